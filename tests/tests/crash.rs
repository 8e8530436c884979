//! SIGKILL crash tests on the real default store (redb), on sled and on PostgreSQL.
//!
//! A worker process runs the order workflow on a fresh store and is
//! killed with SIGKILL at each group-commit point in turn (just before a
//! group is written, and just after it is durable; on PostgreSQL also with
//! the group's transaction open), at random times, and
//! sometimes again while it recovers. After each kill the supervisor reads
//! what was checkpointed, restarts the worker, and checks: every order
//! completes with the result of an uncrashed run, every activity ran at
//! least once, and no activity whose completion was checkpointed ran again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durable_runtime::history::EventKind;
use durable_runtime::store::StoreError;
use durable_runtime::store::redb::RedbStore;
use durable_runtime::testing::backends::{Backend, TestStore};
use durable_runtime::{ResultError, Runtime, Workflow};
use durable_tests::{
    dossier, dossier_expected, expected, guard, journey, journey_expected, ledger_expected,
    nap_expected, process_order, tick, tick_run,
};
use rand::RngExt;

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");
const ORDERS: usize = 3;

/// Per instance: the checkpointed step and which parts of it are done.
type Checkpointed = HashMap<String, (u64, Vec<bool>)>;

/// The id of instance `i` of a workload.
type IdOf = fn(usize) -> String;

/// Which workflow the worker runs, and what a correct run looks like.
#[derive(Clone, Copy)]
struct Workload {
    /// `CRASH_WORKLOAD` for the worker.
    name: &'static str,
    /// The id of instance `i`.
    id: IdOf,
    /// The result of an uncrashed run of instance `i`.
    expected: fn(usize) -> String,
    /// (activity, step, part) of every effect an instance must have had.
    effects: &'static [(&'static str, u64, Option<u64>)],
    /// The step of a finished instance (anything below is mid-workflow).
    last_step: u64,
    /// Checkpointed (step, parts done) per instance, read without running anything.
    inspect: fn(&tokio::runtime::Runtime, &str, IdOf) -> Checkpointed,
}

/// Where one scenario keeps its store and the worker's effects log.
struct Site {
    dir: tempfile::TempDir,
    store: TestStore,
}

impl Site {
    fn new(backend: Backend) -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
            store: backend.store(),
        }
    }
}

/// The commit points a kill can land on: PostgreSQL also has an open
/// transaction to kill the worker in.
fn phases(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Redb | Backend::Sled => &["before", "after"],
        Backend::Postgres => &["before", "applied", "after"],
    }
}

const ORDER_EFFECTS: &[(&str, u64, Option<u64>)] = &[
    ("check_fraud", 1, None),
    ("prepare_shipment", 2, None),
    ("charge", 3, None),
    ("ship", 4, None),
];
// steps: 1 leg, 2 timer, 3 signal, 4 update, 5 its reply, 6 promise, 7 hand
// out its token, 8 its completion, 9 select, 10 child, 11 parts, 12 encode
// (heartbeats), 13 compensation
const JOURNEY_EFFECTS: &[(&str, u64, Option<u64>)] = &[
    ("step", 1, None),
    ("hand_out", 7, None),
    ("part", 11, Some(0)),
    ("part", 11, Some(1)),
    ("part", 11, Some(2)),
    ("encode", 12, None),
    ("undo", 13, Some(0)),
    ("helper", 14, None),
    ("helper", 15, None),
];

const ORDERS_WORKLOAD: Workload = Workload {
    name: "orders",
    id: |i| format!("order-{i}"),
    expected,
    effects: ORDER_EFFECTS,
    last_step: 5,
    inspect: inspect::<process_order>,
};

const JOURNEY_WORKLOAD: Workload = Workload {
    name: "journey",
    id: |i| format!("journey-{i}"),
    expected: journey_expected,
    effects: JOURNEY_EFFECTS,
    last_step: 16,
    inspect: inspect::<journey>,
};

// a large local revised twice: its superseded values go in the batch that
// supersedes them, and a checkpoint refers to an unchanged one
const DOSSIER_WORKLOAD: Workload = Workload {
    name: "dossier",
    id: |i| format!("dossier-{i}"),
    expected: dossier_expected,
    effects: &[
        ("revise", 1, None),
        ("revise", 2, None),
        ("revise", 3, None),
        ("revise", 4, None),
    ],
    last_step: 5,
    inspect: inspect::<dossier>,
};

const GUARD_EFFECTS: &[(&str, u64, Option<u64>)] = &[("undo", 2, None)];

const GUARD_WORKLOAD: Workload = Workload {
    name: "guard",
    id: |i| format!("guard-{i}"),
    expected: |i| format!("guard {i}: cancelled, undone"),
    effects: GUARD_EFFECTS,
    last_step: 3,
    inspect: inspect::<guard>,
};

// the same `guard` workflow, terminated instead of cancelled: no cleanup runs
const HALT_WORKLOAD: Workload = Workload {
    name: "halt",
    id: |i| format!("guard-{i}"),
    expected: |_| "terminated: halted by the crash test".to_owned(),
    effects: &[],
    last_step: 2,
    inspect: inspect::<guard>,
};

// runs of a schedule (every minute, buffer-all), started as a test clock
// moves: each run starts once, whatever was killed between its time and
// its start
const SCHEDULE_WORKLOAD: Workload = Workload {
    name: "schedule",
    id: tick_run,
    expected: |i| format!("tock {}/1", tick_run(i)),
    effects: &[("tock", 1, None)],
    last_step: 2,
    inspect: inspect::<tick>,
};

fn spawn(w: Workload, site: &Site, incarnation: u32, crash: Option<(&str, u64)>) -> Child {
    spawn_at(
        w.name,
        site.dir.path(),
        Some(site.store.url()),
        incarnation,
        crash,
    )
}

/// A worker on the default store in `dir` (workloads that need no other backend).
fn spawn_named(name: &str, dir: &Path, incarnation: u32, crash: Option<(&str, u64)>) -> Child {
    spawn_at(name, dir, None, incarnation, crash)
}

fn spawn_at(
    name: &str,
    dir: &Path,
    store_url: Option<&str>,
    incarnation: u32,
    crash: Option<(&str, u64)>,
) -> Child {
    let mut cmd = Command::new(WORKER);
    cmd.env("CRASH_WORKLOAD", name);
    if let Some(url) = store_url {
        cmd.env("CRASH_STORE_URL", url);
    }
    cmd.arg(dir)
        .arg(ORDERS.to_string())
        .arg(incarnation.to_string());
    if let Some((phase, k)) = crash {
        cmd.arg(phase).arg(k.to_string());
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn crash-worker")
}

/// Reads the worker's stdout until `CHECKPOINT` (true) or `DONE` (false).
fn wait_marker(child: &mut Child) -> (bool, Vec<String>) {
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("worker stdout");
        if line.starts_with("CHECKPOINT") {
            return (true, lines);
        }
        let done = line == "DONE";
        lines.push(line);
        if done {
            return (false, lines);
        }
    }
    panic!("worker exited without DONE: {lines:?}");
}

/// Reads the worker's stdout until it has opened its store; a thread
/// drains the rest, so the worker never writes to a closed pipe.
fn wait_open(child: &mut Child) {
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    for line in lines.by_ref() {
        if line.expect("worker stdout").starts_with("OPEN") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL the worker");
    child.wait().expect("reap the worker");
}

/// The checkpointed step and finished parts of every instance (0 when not started).
fn inspect<W: Workflow>(rt: &tokio::runtime::Runtime, url: &str, id_of: IdOf) -> Checkpointed {
    rt.block_on(async {
        // read what was checkpointed without running anything
        let runtime = Runtime::builder()
            .workflow::<W>()
            .resume_on_open(false)
            .open_url(url)
            .await
            .expect("open after kill");
        let mut steps = HashMap::new();
        for i in 0..ORDERS {
            let id = id_of(i);
            let handle = runtime.handle::<W>(id.clone());
            match handle.describe() {
                Ok(d) => steps.insert(id.clone(), (d.step, d.parts_done)),
                Err(ResultError::NotFound { .. }) => steps.insert(id.clone(), (0, Vec::new())),
                Err(e) => panic!("{id}: {e}"),
            };
            // the checkpointed state reads whole: no value it refers to is missing
            match handle.state_json() {
                Ok(_) | Err(ResultError::NotFound { .. }) => {}
                Err(e) => panic!("the state of {id} does not read after a kill: {e}"),
            }
        }
        runtime.shutdown().await;
        steps
    })
}

/// Per instance, the keys of its stored field values (a state's large
/// fields, a large input), read from the store itself.
type Stored = HashMap<String, Vec<Vec<u8>>>;

fn stored(rt: &tokio::runtime::Runtime, store: &TestStore, w: Workload) -> Stored {
    rt.block_on(async {
        let opened = store.open().await;
        (0..ORDERS)
            .map(|i| {
                let id = (w.id)(i);
                let mut prefix = vec![b'f'];
                prefix.extend_from_slice(id.as_bytes());
                prefix.push(0);
                let keys = opened
                    .scan_prefix(&prefix)
                    .expect("scan stored values")
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                (id, keys)
            })
            .collect()
    })
}

/// What an uncrashed run of `w` leaves stored: a recovered run must leave
/// the same, no value missing and none left over.
fn uncrashed(w: Workload, rt: &tokio::runtime::Runtime, backend: Backend) -> Stored {
    let site = Site::new(backend);
    let mut child = spawn(w, &site, 1, None);
    let (hit, lines) = wait_marker(&mut child);
    assert!(!hit);
    child.wait().unwrap();
    verify(w, site.dir.path(), &lines, &[]);
    stored(rt, &site.store, w)
}

/// After recovery, the stored field values equal an uncrashed run's.
fn same_stored_values(w: Workload, rt: &tokio::runtime::Runtime, site: &Site, want: &Stored) {
    let got = stored(rt, &site.store, w);
    for (id, keys) in want {
        assert_eq!(
            got.get(id),
            Some(keys),
            "{id}'s stored values after recovery differ from an uncrashed run's"
        );
    }
}

/// One effects log line.
struct Effect {
    incarnation: u32,
    activity: String,
    id: String,
    step: u64,
    part: Option<u64>,
    attempt: u32,
}

/// Effects log lines; keys are `<id>/<incarnation>/<step>` or
/// `<id>/<incarnation>/<step>/<part>`.
fn effects(dir: &Path) -> Vec<Effect> {
    let text = std::fs::read_to_string(dir.join("effects.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // read from the incarnation (16 hex digits): a child's id holds `/`s
            let key: Vec<&str> = f[2].split('/').collect();
            let at = (1..key.len().saturating_sub(1))
                .rev()
                .find(|&i| key[i].len() == 16 && key[i].chars().all(|c| c.is_ascii_hexdigit()))
                .unwrap_or_else(|| panic!("no incarnation in {}", f[2]));
            Effect {
                incarnation: f[0].parse().unwrap(),
                activity: f[1].to_owned(),
                id: key[..at].join("/"),
                step: key[at + 1].parse().unwrap(),
                part: key.get(at + 2).map(|p| p.parse().unwrap()),
                attempt: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// Checks a finished directory against what was checkpointed before each restart.
fn verify(w: Workload, dir: &Path, final_lines: &[String], seen: &[(u32, Checkpointed)]) {
    for i in 0..ORDERS {
        let want = format!("RESULT {} {}", (w.id)(i), (w.expected)(i));
        assert!(
            final_lines.contains(&want),
            "missing `{want}` in {final_lines:?}"
        );
    }
    let log = effects(dir);
    if w.effects.is_empty() {
        assert!(
            log.is_empty(),
            "{} expects no side effect, found {} lines",
            w.name,
            log.len()
        );
    }
    for i in 0..ORDERS {
        let id = (w.id)(i);
        for (activity, step, part) in w.effects {
            assert!(
                log.iter().any(|e| e.activity == *activity
                    && e.id == id
                    && e.step == *step
                    && e.part == *part),
                "{activity} (step {step}, part {part:?}) of {id} never ran; its effects: {:?}",
                log.iter()
                    .filter(|e| e.id == id)
                    .map(|e| format!(
                        "{} {} {} {:?} #{}",
                        e.incarnation, e.activity, e.step, e.part, e.attempt
                    ))
                    .collect::<Vec<_>>()
            );
        }
    }
    // an effect is recorded once its step is passed, or its part is checkpointed
    for (incarnation, checkpointed) in seen {
        for e in log.iter().filter(|e| e.incarnation >= *incarnation) {
            let Some((step, parts)) = checkpointed.get(&e.id) else {
                continue;
            };
            let part_done = e
                .part
                .is_some_and(|p| *step == e.step && parts.get(p as usize) == Some(&true));
            if e.step < *step || part_done {
                panic!(
                    "{} of {} (step {}, part {:?}, attempt {}) ran again in incarnation {} although it was checkpointed (step {step}, parts {parts:?})",
                    e.activity, e.id, e.step, e.part, e.attempt, e.incarnation
                );
            }
        }
    }
}

/// Kills a run of `w` at every checkpoint, in each of the backend's
/// phases, and checks each recovery; `groups` is the least number of group
/// commits the workload makes (a kill point per group and phase).
fn kill_at_every_checkpoint(w: Workload, backend: Backend, groups: usize) {
    let rt = &tokio_rt();
    let want = uncrashed(w, rt, backend);
    let mut points = 0;
    let mut mid_workflow = 0;
    for phase in phases(backend) {
        for k in 0.. {
            let site = Site::new(backend);
            let mut child = spawn(w, &site, 1, Some((phase, k)));
            let (hit, _) = wait_marker(&mut child);
            if !hit {
                child.wait().unwrap();
                break;
            }
            kill(&mut child);
            points += 1;
            let mut seen = vec![(2, (w.inspect)(rt, site.store.url(), w.id))];
            let steps: Vec<u64> = seen[0].1.values().map(|(s, _)| *s).collect();
            // inside an instance, or between instances that start one after another
            let inside = steps.iter().any(|s| (1..w.last_step).contains(s));
            let between = steps.contains(&0) && steps.contains(&w.last_step);
            if inside || between {
                mid_workflow += 1;
            }
            let mut incarnation = 2;
            if k % 5 == 2 {
                // killed again while recovering
                let mut again = spawn(w, &site, incarnation, None);
                std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..30)));
                kill(&mut again);
                incarnation += 1;
                seen.push((incarnation, (w.inspect)(rt, site.store.url(), w.id)));
            }
            let mut last = spawn(w, &site, incarnation, None);
            let (hit, lines) = wait_marker(&mut last);
            assert!(!hit);
            last.wait().unwrap();
            verify(w, site.dir.path(), &lines, &seen);
            same_stored_values(w, rt, &site, &want);
        }
    }
    assert!(
        mid_workflow * 2 >= points,
        "most kills must land mid-workflow ({mid_workflow} of {points})"
    );
    assert!(
        points >= phases(backend).len() * groups,
        "expected a kill point per group commit and phase, got {points}"
    );
    println!("{points} kill points");
}

fn kill_at_random_times(w: Workload, rt: &tokio::runtime::Runtime, kills: u32, backend: Backend) {
    let want = uncrashed(w, rt, backend);
    let site = Site::new(backend);
    let mut seen = Vec::new();
    let mut rng = rand::rng();
    for incarnation in 1..=kills {
        let mut child = spawn(w, &site, incarnation, None);
        match backend {
            Backend::Redb | Backend::Sled => {
                std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
            }
            // connecting takes a varying while, and the workflows then finish
            // within milliseconds (no fsync here): count from the open
            Backend::Postgres => {
                wait_open(&mut child);
                std::thread::sleep(Duration::from_micros(rng.random_range(0..8_000)));
            }
        }
        kill(&mut child);
        seen.push((incarnation + 1, (w.inspect)(rt, site.store.url(), w.id)));
    }
    let mut last = spawn(w, &site, kills + 1, None);
    let (_, lines) = wait_marker(&mut last);
    last.wait().unwrap();
    verify(w, site.dir.path(), &lines, &seen);
    same_stored_values(w, rt, &site, &want);
    let mid: usize = seen
        .iter()
        .filter(|(_, c)| {
            let steps: Vec<u64> = c.values().map(|(s, _)| *s).collect();
            steps.iter().any(|s| (1..w.last_step).contains(s))
                || (steps.contains(&0) && steps.contains(&w.last_step))
        })
        .count();
    println!("{backend:?}: {mid} of {kills} kills landed mid-workflow");
}

/// The embedded store is one process's: a second one is refused while the first lives
/// (PostgreSQL is shared by workers: `tests/cluster.rs`).
fn second_process_gets_a_clear_error() {
    let site = Site::new(Backend::Redb);
    let mut child = spawn(ORDERS_WORKLOAD, &site, 1, Some(("after", 1)));
    let (hit, _) = wait_marker(&mut child);
    assert!(hit);
    let started = Instant::now();
    let second = RedbStore::open(site.store.url().trim_start_matches("redb:")).map(|_| ());
    match second {
        Err(StoreError::Locked { .. }) => {}
        other => panic!("expected Locked while another process has the store, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the second open must not hang"
    );
    kill(&mut child);
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_second_process_opening_the_store_gets_a_clear_error() {
    second_process_gets_a_clear_error();
}

#[test]
fn nothing_is_lost_or_repeated_when_killed_at_every_checkpoint() {
    kill_at_every_checkpoint(ORDERS_WORKLOAD, Backend::Redb, ORDERS + 4);
}

#[test]
fn nothing_is_lost_or_repeated_when_killed_at_random_times() {
    kill_at_random_times(ORDERS_WORKLOAD, &tokio_rt(), 8, Backend::Redb);
}

#[test]
fn timers_signals_joins_and_sagas_survive_kills_at_every_checkpoint() {
    kill_at_every_checkpoint(JOURNEY_WORKLOAD, Backend::Redb, ORDERS + 6);
}

#[test]
fn timers_signals_joins_and_sagas_survive_kills_at_random_times() {
    kill_at_random_times(JOURNEY_WORKLOAD, &tokio_rt(), 8, Backend::Redb);
}

#[test]
fn a_large_local_revised_and_held_survives_kills_at_every_checkpoint_and_leaves_no_value_behind() {
    kill_at_every_checkpoint(DOSSIER_WORKLOAD, Backend::Redb, ORDERS + 4);
}

#[test]
fn postgres_a_large_local_revised_and_held_survives_kills_at_every_checkpoint() {
    kill_at_every_checkpoint(DOSSIER_WORKLOAD, Backend::Postgres, ORDERS + 4);
}

#[test]
fn a_cancellation_and_its_compensation_survive_kills_at_every_checkpoint() {
    kill_at_every_checkpoint(GUARD_WORKLOAD, Backend::Redb, 3);
}

#[test]
fn a_termination_survives_kills_at_every_checkpoint() {
    // terminate runs no cleanup: no effect may appear in any run
    kill_at_every_checkpoint(HALT_WORKLOAD, Backend::Redb, 2);
}

#[test]
fn schedule_runs_start_once_across_kills_at_every_checkpoint() {
    kill_at_every_checkpoint(SCHEDULE_WORKLOAD, Backend::Redb, ORDERS + 2);
}

#[test]
fn schedule_runs_start_once_across_kills_at_random_times() {
    kill_at_random_times(SCHEDULE_WORKLOAD, &tokio_rt(), 8, Backend::Redb);
}

#[test]
fn sled_nothing_is_lost_or_repeated_when_killed_at_every_checkpoint() {
    kill_at_every_checkpoint(ORDERS_WORKLOAD, Backend::Sled, ORDERS + 4);
}

#[test]
fn postgres_nothing_is_lost_or_repeated_when_killed_at_every_checkpoint() {
    kill_at_every_checkpoint(ORDERS_WORKLOAD, Backend::Postgres, ORDERS + 4);
}

#[test]
fn postgres_nothing_is_lost_or_repeated_when_killed_at_random_times() {
    kill_at_random_times(ORDERS_WORKLOAD, &tokio_rt(), 8, Backend::Postgres);
}

#[test]
fn postgres_timers_signals_joins_and_sagas_survive_kills_at_random_times() {
    kill_at_random_times(JOURNEY_WORKLOAD, &tokio_rt(), 8, Backend::Postgres);
}

#[test]
fn postgres_timers_signals_joins_and_sagas_survive_kills_at_every_checkpoint() {
    kill_at_every_checkpoint(JOURNEY_WORKLOAD, Backend::Postgres, ORDERS + 6);
}

/// Per ledger instance: its version and how many `Migrated` events it has.
fn ledger_state(rt: &tokio::runtime::Runtime, dir: &Path) -> Vec<(u32, usize)> {
    versions_and_migrations(rt, dir, "ledger")
}

/// (version, `Migrated` events) of instances `<workload>-0..ORDERS`, read
/// without running anything.
fn versions_and_migrations(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    workload: &str,
) -> Vec<(u32, usize)> {
    rt.block_on(async {
        let runtime = Runtime::builder()
            .resume_on_open(false)
            .open(dir.join("store"))
            .await
            .expect("open after kill");
        let out = (0..ORDERS)
            .map(|i| {
                let id = format!("{workload}-{i}");
                let version = runtime.describe(&id).expect("describe").version;
                let migrated = runtime
                    .history(&id)
                    .expect("history")
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Migrated { .. }))
                    .count();
                (version, migrated)
            })
            .collect();
        runtime.shutdown().await;
        out
    })
}

#[test]
fn a_migration_on_open_is_all_or_nothing_when_killed_at_every_commit() {
    let rt = tokio_rt();
    let mut points = 0;
    for phase in ["before", "after"] {
        // group commits count from 0; on open, commit k migrates ledger-k
        for k in 0..ORDERS as u64 {
            let dir = tempfile::tempdir().unwrap();
            let mut v1 = spawn_named("ledger_v1", dir.path(), 1, None);
            let (hit, _) = wait_marker(&mut v1);
            assert!(!hit);
            v1.wait().expect("reap v1");

            let mut v2 = spawn_named("ledger_v2", dir.path(), 2, Some((phase, k)));
            let (hit, lines) = wait_marker(&mut v2);
            assert!(hit, "{phase} {k}: no such commit: {lines:?}");
            kill(&mut v2);
            points += 1;
            // each instance holds the old state or the migrated one with its event, never half
            let state = ledger_state(&rt, dir.path());
            for (i, (version, migrated)) in state.iter().enumerate() {
                assert!(
                    matches!((version, migrated), (1, 0) | (2, 1)),
                    "{phase} {k}: ledger-{i} is at version {version} with {migrated} Migrated events"
                );
            }
            let done = state.iter().filter(|(v, _)| *v == 2).count() as u64;
            let want = if phase == "before" { k } else { k + 1 };
            assert_eq!(done, want, "{phase} {k}: migrated instances {state:?}");

            let mut again = spawn_named("ledger_v2", dir.path(), 3, None);
            let (hit, lines) = wait_marker(&mut again);
            assert!(!hit);
            again.wait().expect("reap");
            for i in 0..ORDERS {
                let want = format!("RESULT ledger-{i} {}", ledger_expected(i));
                assert!(
                    lines.contains(&want),
                    "{phase} {k}: missing {want:?} in {lines:?}"
                );
            }
            assert!(
                ledger_state(&rt, dir.path()).iter().all(|s| *s == (2, 1)),
                "migrated exactly once each"
            );
        }
    }
    assert_eq!(points, 2 * ORDERS);
}

/// Sleepers are not read on open: each is migrated when its timer fires, by
/// its own task. Killed at every group commit of that (migrations and the
/// transitions after them, in whatever groups they fall), every instance
/// holds the old state or the migrated one with its event, never half, and
/// the next run migrates each exactly once and finishes it.
#[test]
fn a_migration_at_wake_up_is_all_or_nothing_when_killed_at_every_commit() {
    let rt = tokio_rt();
    let mut points = 0;
    for phase in ["before", "after"] {
        for k in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let mut v1 = spawn_named("nap_v1", dir.path(), 1, None);
            let (hit, _) = wait_marker(&mut v1);
            assert!(!hit);
            v1.wait().expect("reap v1");

            let mut v2 = spawn_named("nap_v2", dir.path(), 2, Some((phase, k)));
            let (hit, _) = wait_marker(&mut v2);
            if !hit {
                // the run ended before group commit `k`: every one was tried;
                // an instance's migration is durable before its transition
                // runs, so there are two groups at least
                v2.wait().expect("reap v2");
                assert!(k >= 2, "{phase}: only {k} commits");
                break;
            }
            kill(&mut v2);
            points += 1;
            for (i, state) in versions_and_migrations(&rt, dir.path(), "nap")
                .iter()
                .enumerate()
            {
                assert!(
                    matches!(state, (1, 0) | (2, 1)),
                    "{phase} {k}: nap-{i} is at version {} with {} Migrated events",
                    state.0,
                    state.1
                );
            }

            let mut again = spawn_named("nap_v2", dir.path(), 3, None);
            let (hit, lines) = wait_marker(&mut again);
            assert!(!hit);
            again.wait().expect("reap");
            assert!(
                lines.iter().any(|l| l == "OPEN resumed=0"),
                "{phase} {k}: open read a sleeper: {lines:?}"
            );
            for i in 0..ORDERS {
                let want = format!("RESULT nap-{i} {}", nap_expected(i));
                assert!(
                    lines.contains(&want),
                    "{phase} {k}: missing {want:?} in {lines:?}"
                );
            }
            assert!(
                versions_and_migrations(&rt, dir.path(), "nap")
                    .iter()
                    .all(|s| *s == (2, 1)),
                "migrated exactly once each"
            );
        }
    }
    assert!(points >= 4, "{points} kill points");
}

/// Each overlap policy, killed at every group commit of a schedule whose
/// second run comes due while the first still holds: each run starts at
/// most once, and the policy's outcome is the same as without a kill.
#[test]
fn every_overlap_policy_keeps_its_outcome_across_kills_at_every_checkpoint() {
    // (policy, end of the 00:01 run, end of the 00:02 run)
    let outcomes = [
        ("skip", "finished", "absent"),
        ("buffer_one", "finished", "finished"),
        ("buffer_all", "finished", "finished"),
        ("cancel_other", "cancelled", "finished"),
        ("terminate_other", "terminated", "finished"),
        ("allow_all", "finished", "finished"),
    ];
    let mut points = 0;
    for (policy, first, second) in outcomes {
        let name = format!("overlap:{policy}");
        let want = [
            format!("RESULT job@2030-01-01T00:01:00Z {first}"),
            format!("RESULT job@2030-01-01T00:02:00Z {second}"),
        ];
        let runs = if second == "absent" { 1 } else { 2 };
        let check = |lines: &[String], when: &str| {
            for w in &want {
                assert!(
                    lines.contains(w),
                    "{policy} {when}: missing {w:?} in {lines:?}"
                );
            }
            let counted = format!("STARTED {runs} RUNS {runs}");
            assert!(
                lines.contains(&counted),
                "{policy} {when}: want {counted:?} in {lines:?}"
            );
        };
        // without a kill
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_named(&name, dir.path(), 1, None);
        let (_, lines) = wait_marker(&mut child);
        child.wait().unwrap();
        check(&lines, "uncrashed");
        for phase in ["before", "after"] {
            for k in 0.. {
                let dir = tempfile::tempdir().unwrap();
                let mut child = spawn_named(&name, dir.path(), 1, Some((phase, k)));
                let (hit, _) = wait_marker(&mut child);
                if !hit {
                    child.wait().unwrap();
                    break;
                }
                kill(&mut child);
                points += 1;
                let mut again = spawn_named(&name, dir.path(), 2, None);
                let (hit, lines) = wait_marker(&mut again);
                assert!(!hit);
                again.wait().unwrap();
                check(&lines, &format!("killed {phase} commit {k}"));
            }
        }
    }
    println!("{points} kill points");
    assert!(
        points >= 2 * 6 * 3,
        "a few commits per policy, got {points}"
    );
}
