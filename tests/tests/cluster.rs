//! Several worker processes on one PostgreSQL database, killed with SIGKILL
//! mid-way.
//!
//! Three `cluster-worker` processes share 1,000 order workflows (each
//! starts a third). When the effects log shows the work under way, the
//! supervisor freezes the others (SIGSTOP), kills one worker (SIGKILL),
//! reads what is checkpointed, and lets the others go on (SIGCONT); later
//! it kills a second one. The survivor must finish every order with the
//! result of an uncrashed run; no activity whose completion was
//! checkpointed when its worker died may run again. The takeover delay
//! (kill to the first and to the last instance owned elsewhere) is printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_runtime::testing::backends::Backend;
use durable_runtime::{ListFilter, Runtime, Status};
use durable_tests::{expected, process_order};

const WORKER: &str = env!("CARGO_BIN_EXE_cluster-worker");
const ORDERS: usize = 1000;
const LEASE_MS: u64 = 2000;

/// A worker process and the lines it printed so far.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn spawn(url: &str, dir: &Path, index: usize) -> Worker {
    let mut child = Command::new(WORKER)
        .env("CLUSTER_LEASE_MS", LEASE_MS.to_string())
        .arg(url)
        .arg(dir)
        .arg(format!("worker-{index}"))
        .arg(index.to_string())
        .arg(ORDERS.to_string())
        .arg("3")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cluster-worker");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().expect("piped stdout");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Worker { child, lines }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// `(id, step)` of every effects log line, in the order written.
fn effects(dir: &Path) -> Vec<(String, String, u64, u32)> {
    let text = std::fs::read_to_string(dir.join("effects.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (id, step) = f.get(2)?.split_once('/')?;
            Some((
                f[1].to_owned(),
                id.to_owned(),
                step.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

fn wait_for_effects(dir: &Path, n: usize) {
    let started = Instant::now();
    while effects(dir).len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {} effects",
            effects(dir).len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checkpointed step of every order (0: not started).
fn checkpointed(rt: &tokio::runtime::Runtime, observer: &Runtime) -> HashMap<String, u64> {
    let _ = rt;
    let mut steps = HashMap::new();
    let filter = ListFilter {
        id_prefix: Some("order-".into()),
        limit: ORDERS * 2,
        ..ListFilter::default()
    };
    for d in observer.list(&filter).expect("list") {
        steps.insert(d.id, d.step);
    }
    steps
}

/// Freezes the other workers, kills `victim`, reads what is checkpointed and
/// how far the effects log is, and lets the others go on. Returns the
/// snapshot and the kill time.
fn kill_one(
    rt: &tokio::runtime::Runtime,
    observer: &Runtime,
    dir: &Path,
    workers: &mut [Option<Worker>],
    victim: usize,
) -> ((usize, HashMap<String, u64>), Instant) {
    let others: Vec<usize> = (0..workers.len())
        .filter(|i| *i != victim && workers[*i].is_some())
        .collect();
    for i in &others {
        signal(&workers[*i].as_ref().unwrap().child, "STOP");
    }
    let mut dead = workers[victim].take().expect("victim alive");
    dead.child.kill().expect("SIGKILL");
    dead.child.wait().expect("reap");
    let killed_at = Instant::now();
    let snapshot = (effects(dir).len(), checkpointed(rt, observer));
    for i in &others {
        signal(&workers[*i].as_ref().unwrap().child, "CONT");
    }
    (snapshot, killed_at)
}

/// Prints how long after the kill the first and the last of `victim`'s
/// instances were owned by another worker.
fn report_takeover(observer: &Runtime, victim: &str, killed_at: Instant) -> Duration {
    let owned = |name: &str| {
        observer
            .workers()
            .expect("workers")
            .into_iter()
            .find(|w| w.name == name)
            .map_or(0, |w| w.instances)
    };
    let at_kill = owned(victim);
    let mut first = None;
    loop {
        let now = owned(victim);
        if first.is_none() && now < at_kill {
            first = Some(killed_at.elapsed());
        }
        if now == 0 {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "{victim}'s {now} instances were not taken over"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = killed_at.elapsed();
    println!(
        "takeover of {victim}: {at_kill} instances; first taken {:?} after the kill, all {all:?} after (lease {LEASE_MS} ms)",
        first.unwrap_or(all)
    );
    all
}

#[test]
fn three_workers_finish_every_order_when_two_are_killed() {
    let store = Backend::Postgres.store();
    let url = store.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // reads the database without running anything
    let observer = rt
        .block_on(
            Runtime::builder()
                .workflow::<process_order>()
                .resume_on_open(false)
                .open_url(&url),
        )
        .expect("observer");
    let _enter = rt.enter();
    let mut workers: Vec<Option<Worker>> =
        (0..3).map(|i| Some(spawn(&url, dir.path(), i))).collect();

    // about 4,500 effects in all (4 activities, a retry of every other charge)
    wait_for_effects(dir.path(), 900);
    let (first, killed_at) = kill_one(&rt, &observer, dir.path(), &mut workers, 0);
    let delay0 = report_takeover(&observer, "worker-0", killed_at);
    wait_for_effects(dir.path(), first.0 + 900);
    let (second, killed_at) = kill_one(&rt, &observer, dir.path(), &mut workers, 1);
    let delay1 = report_takeover(&observer, "worker-1", killed_at);
    assert!(
        first.1.values().any(|s| *s < 5) && second.1.values().any(|s| *s < 5),
        "the kills must land mid-way"
    );

    // the survivor finishes everything
    let survivor = workers[2].as_mut().unwrap();
    let started = Instant::now();
    while !survivor.lines.lock().unwrap().iter().any(|l| l == "DONE") {
        if started.elapsed() > Duration::from_secs(60) {
            let unfinished: Vec<_> = observer
                .list(&ListFilter {
                    id_prefix: Some("order-".into()),
                    status: Some(Status::Running),
                    limit: 20,
                    ..ListFilter::default()
                })
                .unwrap()
                .into_iter()
                .map(|d| (d.id, d.variant, d.step))
                .collect();
            panic!(
                "the survivor did not finish: workers {:?}, unfinished {unfinished:?}, last lines {:?}",
                observer.workers().unwrap(),
                survivor
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
            );
        }
        if let Ok(Some(status)) = survivor.child.try_wait() {
            panic!("the survivor exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    survivor.child.wait().expect("survivor exits");
    let lines = survivor.lines.lock().unwrap().clone();
    for i in 0..ORDERS {
        let want = format!("RESULT order-{i} {}", expected(i));
        assert!(lines.contains(&want), "missing `{want}`");
    }
    let all = checkpointed(&rt, &observer);
    assert_eq!(all.len(), ORDERS);
    for i in 0..ORDERS {
        let d = observer
            .handle::<process_order>(format!("order-{i}"))
            .describe()
            .unwrap();
        assert_eq!(d.status, Status::Completed, "order-{i}");
    }

    // every activity ran; none ran again once its completion was checkpointed
    let log = effects(dir.path());
    for i in 0..ORDERS {
        let id = format!("order-{i}");
        for step in 1..=4 {
            assert!(
                log.iter().any(|(_, e, s, _)| *e == id && *s == step),
                "step {step} of {id} never ran"
            );
        }
    }
    let mut reruns = 0;
    for (offset, steps) in [&first, &second] {
        for (activity, id, step, attempt) in &log[*offset..] {
            let done = steps.get(id).copied().unwrap_or(0);
            assert!(
                *step >= done,
                "{activity} of {id} (step {step}, attempt {attempt}) ran again after its completion was checkpointed (step {done})"
            );
        }
    }
    // runs repeated across the kills (never checkpointed before the kill)
    let mut seen = HashMap::new();
    for (activity, id, step, attempt) in &log {
        *seen.entry((activity, id, step, attempt)).or_insert(0) += 1;
    }
    reruns += seen.values().filter(|n| **n > 1).count();
    println!(
        "{ORDERS} orders done by 3 workers with 2 killed; {} activity executions, {reruns} repeated (in flight at a kill, never checkpointed); takeover {delay0:?} and {delay1:?}",
        log.len()
    );
    rt.block_on(observer.shutdown());
}
