//! SIGKILL crash tests on the real sled store.
//!
//! A worker process runs the order workflow on a temp directory and is
//! killed with SIGKILL at each group-commit point in turn (just before a
//! group is written, and just after it is durable), at random times, and
//! sometimes again while it recovers. After each kill the supervisor reads
//! what was checkpointed, restarts the worker, and checks: every order
//! completes with the result of an uncrashed run, every activity ran at
//! least once, and no activity whose completion was checkpointed ran again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durable_runtime::store::StoreError;
use durable_runtime::store::sled::SledStore;
use durable_runtime::{ResultError, Runtime};
use durable_tests::{ACTIVITIES, expected, process_order};
use rand::Rng;

const WORKER: &str = env!("CARGO_BIN_EXE_crash-worker");
const ORDERS: usize = 3;

fn spawn(dir: &Path, incarnation: u32, crash: Option<(&str, u64)>) -> Child {
    let mut cmd = Command::new(WORKER);
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

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL the worker");
    child.wait().expect("reap the worker");
}

/// The checkpointed step of every order (0 when not started).
fn checkpointed_steps(rt: &tokio::runtime::Runtime, dir: &Path) -> HashMap<String, u64> {
    rt.block_on(async {
        let runtime = Runtime::builder()
            .workflow::<process_order>()
            .open(dir.join("store"))
            .await
            .expect("open after kill");
        // inspect before any resumed activity can move a step: read records straight away
        let mut steps = HashMap::new();
        for i in 0..ORDERS {
            let id = format!("order-{i}");
            match runtime.handle::<process_order>(id.clone()).describe() {
                Ok(d) => steps.insert(id, d.step),
                Err(ResultError::NotFound { .. }) => steps.insert(id, 0),
                Err(e) => panic!("{id}: {e}"),
            };
        }
        runtime.shutdown().await;
        steps
    })
}

/// Effects log lines: (incarnation, activity, order, step, attempt).
fn effects(dir: &Path) -> Vec<(u32, String, String, u64, u32)> {
    let text = std::fs::read_to_string(dir.join("effects.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (order, step) = f[2].split_once('/').expect("key is <id>/<step>");
            (
                f[0].parse().unwrap(),
                f[1].to_owned(),
                order.to_owned(),
                step.parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// Checks a finished directory against the steps seen before each restart.
fn verify(dir: &Path, final_lines: &[String], seen: &[(u32, HashMap<String, u64>)]) {
    for i in 0..ORDERS {
        let want = format!("RESULT order-{i} {}", expected(i));
        assert!(
            final_lines.contains(&want),
            "missing `{want}` in {final_lines:?}"
        );
    }
    let log = effects(dir);
    for i in 0..ORDERS {
        let id = format!("order-{i}");
        for (j, activity) in ACTIVITIES.iter().enumerate() {
            let step = j as u64 + 1;
            assert!(
                log.iter()
                    .any(|(_, a, o, s, _)| a == activity && *o == id && *s == step),
                "{activity} of {id} never ran: {log:?}"
            );
        }
    }
    // an activity with key step s is recorded complete once the step passed s
    for (incarnation, steps) in seen {
        for (inc, activity, order, step, attempt) in &log {
            if inc >= incarnation
                && steps
                    .get(order)
                    .is_some_and(|checkpointed| step < checkpointed)
            {
                panic!(
                    "{activity} of {order} (step {step}, attempt {attempt}) ran again in incarnation {inc} although step {} was checkpointed before it started",
                    steps[order]
                );
            }
        }
    }
}

fn kill_at_every_checkpoint(rt: &tokio::runtime::Runtime) -> usize {
    let mut points = 0;
    let mut mid_workflow = 0;
    for phase in ["before", "after"] {
        for k in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let mut child = spawn(dir.path(), 1, Some((phase, k)));
            let (hit, _) = wait_marker(&mut child);
            if !hit {
                child.wait().unwrap();
                break;
            }
            kill(&mut child);
            points += 1;
            let mut seen = vec![(2, checkpointed_steps(rt, dir.path()))];
            if seen[0].1.values().any(|s| (1..5).contains(s)) {
                mid_workflow += 1;
            }
            let mut incarnation = 2;
            if k % 5 == 2 {
                // killed again while recovering
                let mut again = spawn(dir.path(), incarnation, None);
                std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..30)));
                kill(&mut again);
                incarnation += 1;
                seen.push((incarnation, checkpointed_steps(rt, dir.path())));
            }
            let mut last = spawn(dir.path(), incarnation, None);
            let (hit, lines) = wait_marker(&mut last);
            assert!(!hit);
            last.wait().unwrap();
            verify(dir.path(), &lines, &seen);
        }
    }
    assert!(
        mid_workflow * 2 >= points,
        "most kills must land mid-workflow ({mid_workflow} of {points})"
    );
    points
}

fn kill_at_random_times(rt: &tokio::runtime::Runtime, kills: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let mut rng = rand::rng();
    for incarnation in 1..=kills {
        let mut child = spawn(dir.path(), incarnation, None);
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        kill(&mut child);
        seen.push((incarnation + 1, checkpointed_steps(rt, dir.path())));
    }
    let mut last = spawn(dir.path(), kills + 1, None);
    let (_, lines) = wait_marker(&mut last);
    last.wait().unwrap();
    verify(dir.path(), &lines, &seen);
}

fn second_process_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), 1, Some(("after", 1)));
    let (hit, _) = wait_marker(&mut child);
    assert!(hit);
    let started = Instant::now();
    match SledStore::open(dir.path().join("store")) {
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
    let points = kill_at_every_checkpoint(&tokio_rt());
    assert!(
        points >= 2 * (ORDERS + 4),
        "expected a kill point per group commit, got {points}"
    );
    println!("{points} kill points");
}

#[test]
fn nothing_is_lost_or_repeated_when_killed_at_random_times() {
    kill_at_random_times(&tokio_rt(), 8);
}
