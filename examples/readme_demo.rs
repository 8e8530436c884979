//! The README's first command, as a person would try it: run the order
//! example, kill it with SIGKILL partway, run the same command again, and
//! read what it says. The rerun must report what it resumed and pass its own
//! check of the effects log (nothing checkpointed ran again).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary, built beside this test (`cargo test` builds a
/// package's examples before its tests).
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = target.join("examples").join("order_processing");
    assert!(
        path.exists(),
        "{} not built: run the tests with cargo test/nextest, which build the examples",
        path.display()
    );
    path
}

#[test]
fn a_run_killed_partway_resumes_and_its_self_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders");
    let args = ["--db", db.to_str().unwrap(), "--orders", "60"];
    let mut first = Command::new(example())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // partway: some activities done, the orders far from finished
    let log = db.join("effects.log");
    let started = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&log)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run made no progress"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mut said = String::new();
    first
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(
        said.contains("kill -9"),
        "no hint that it can be killed: {said}"
    );

    let second = Command::new(example()).args(args).output().unwrap();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "the rerun failed: {out}");
    assert!(
        out.contains("unfinished ("),
        "no word of what it found: {out}"
    );
    assert!(
        out.contains(" at "),
        "no step of the unfinished orders: {out}"
    );
    assert!(out.contains("completed 60/60"), "{out}");
    assert!(
        out.contains("60/60 orders have all four activities"),
        "{out}"
    );
    assert!(out.contains("0 checkpointed activities ran again"), "{out}");
}
