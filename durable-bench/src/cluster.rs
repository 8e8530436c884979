//! Scenario `cluster` (issue #9): workflows/s with 1, 2 and 4 worker
//! processes on one PostgreSQL database.
//!
//! Each worker is this binary in `--cluster-worker` mode: it joins the
//! database, says `READY`, waits for `go` on stdin, starts its share of the
//! orders all at once, waits for them and says `DONE <cpu seconds>`. The
//! supervisor times from `go` to the last `DONE`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use durable_bench::{Order, TRANSITIONS_PER_ORDER, cpu_seconds, process_order};
use durable_runtime::prelude::*;
use serde::Serialize;

/// One run: `workers` processes sharing `workflows` orders.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterRun {
    pub(crate) workers: usize,
    pub(crate) workflows: usize,
    pub(crate) seconds: f64,
    pub(crate) workflows_per_s: f64,
    pub(crate) transitions_per_s: f64,
    /// CPU seconds of all worker processes per workflow (ms).
    pub(crate) worker_cpu_ms_per_wf: f64,
    pub(crate) load: f64,
}

/// `--cluster-worker URL NAME RUN N`.
pub(crate) async fn worker(url: &str, name: &str, run: &str, n: usize) {
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .worker_name(name)
        .open_url(url)
        .await
        .expect("join the database");
    let rt = Arc::new(rt);
    println!("READY");
    let _ = std::io::stdout().flush();
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    let cpu = cpu_seconds();
    let mut starting = tokio::task::JoinSet::new();
    for i in 0..n {
        let rt = rt.clone();
        let id = format!("{run}-{name}-{i}");
        starting.spawn(async move {
            rt.start(id, process_order(Order::numbered(i)), IdPolicy::Reject)
                .await
                .expect("start")
        });
    }
    let mut handles = Vec::with_capacity(n);
    while let Some(h) = starting.join_next().await {
        handles.push(h.expect("start task"));
    }
    for h in handles {
        h.result().await.expect("result").expect("order");
    }
    println!("DONE {:.3}", cpu_seconds() - cpu);
    let _ = std::io::stdout().flush();
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown().await;
    }
}

/// Runs `workflows` orders on `workers` processes sharing `url`.
pub(crate) fn run(url: &str, workflows: usize, workers: usize, load: fn() -> f64) -> ClusterRun {
    let exe = std::env::current_exe().expect("the bench binary");
    let run_id = format!(
        "c{workers}x{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let share = workflows / workers;
    let mut children = Vec::new();
    for w in 0..workers {
        let mut child = Command::new(&exe)
            .arg("--cluster-worker")
            .arg(url)
            .arg(format!("bench-{w}"))
            .arg(&run_id)
            .arg(share.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line == "READY" => break,
                Some(Ok(_)) => {}
                _ => panic!("a worker exited before it was ready"),
            }
        }
        children.push((child, lines));
    }
    let started = Instant::now();
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("tell a worker to go");
        stdin.flush().expect("flush");
    }
    let mut cpu = 0.0;
    for (child, lines) in &mut children {
        for line in lines.by_ref() {
            let line = line.expect("worker output");
            if let Some(secs) = line.strip_prefix("DONE ") {
                cpu += secs.parse::<f64>().unwrap_or(0.0);
                break;
            }
        }
        child.wait().expect("a worker exits");
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = (share * workers) as f64;
    ClusterRun {
        workers,
        workflows: share * workers,
        seconds,
        workflows_per_s: done / seconds,
        transitions_per_s: done * TRANSITIONS_PER_ORDER as f64 / seconds,
        worker_cpu_ms_per_wf: cpu * 1000.0 / done,
        load: load(),
    }
}

/// The table of [`run`]s.
pub(crate) fn print(runs: &[ClusterRun]) {
    if runs.is_empty() {
        return;
    }
    println!("\ncluster: worker processes on one PostgreSQL database, all orders started at once");
    println!(
        "{:>7} {:>9} {:>8} {:>9} {:>13} {:>15} {:>5}",
        "workers", "workflows", "seconds", "wf/s", "transitions/s", "worker cpu ms/wf", "load"
    );
    for r in runs {
        println!(
            "{:>7} {:>9} {:>8.2} {:>9.0} {:>13.0} {:>15.3} {:>5.2}",
            r.workers,
            r.workflows,
            r.seconds,
            r.workflows_per_s,
            r.transitions_per_s,
            r.worker_cpu_ms_per_wf,
            r.load
        );
    }
}
