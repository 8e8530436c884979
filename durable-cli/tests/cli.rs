//! The `durable` command on a real store: output and exit codes.

use std::process::Command;

use durable_runtime::prelude::*;

#[activity(max_attempts = 2, initial_interval_ms = 1)]
async fn work(n: u32) -> Result<u32, ActivityError> {
    if n == 0 {
        return Err(ActivityError::terminal("zero is not allowed"));
    }
    Ok(n * 2)
}

#[workflow]
async fn doubler(n: u32) -> Result<u32, WorkflowError> {
    let d = work(n).await?;
    Ok(d)
}

#[workflow]
async fn waiter(n: u32) -> Result<u32, WorkflowError> {
    let got: u32 = signal("go").await?;
    Ok(n + got)
}

fn durable(db: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn lists_describes_and_steers_instances_with_exit_codes_scripts_can_trust() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::builder()
            .workflow::<doubler>()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap();
        rt.start("ok", doubler(21), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        rt.start("bad", doubler(0), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap_err();
        rt.start("waiting", waiter(1), IdPolicy::Reject)
            .await
            .unwrap();
        // a live store is locked: the command says so, with its own exit code
        let (code, _, err) = durable(dir.path(), &["list"]);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("[DURABLE-LOCKED]"), "{err}");
        rt.shutdown().await;
    }

    let (code, out, err) = durable(dir.path(), &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok") && out.contains("bad") && out.contains("waiting"),
        "{out}"
    );

    let (code, out, _) = durable(dir.path(), &["list", "--status", "running", "--json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{out}");
    assert_eq!(list[0]["id"], "waiting");
    assert_eq!(list[0]["waiting_for"], "signal go");

    let (code, out, _) = durable(dir.path(), &["describe", "ok", "--json"]);
    assert_eq!(code, 0);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (d["workflow"].as_str(), d["status"].as_str()),
        (Some("doubler"), Some("Completed"))
    );

    let (code, out, _) = durable(dir.path(), &["history", "ok"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("started doubler")
            && out.contains("activity work")
            && out.contains("finished Completed"),
        "{out}"
    );

    let (code, out, _) = durable(dir.path(), &["stats", "--json"]);
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (stats["completed"].as_u64(), stats["running"].as_u64()),
        (Some(2), Some(1)),
        "{out}"
    );

    let (code, _, err) = durable(dir.path(), &["describe", "nobody"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = durable(dir.path(), &["list", "--status", "sleepy"]);
    assert_eq!(code, 2, "{err}");

    let (code, out, _) = durable(dir.path(), &["terminate", "waiting", "--reason", "cleanup"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = durable(dir.path(), &["cancel", "ok"]);
    assert_eq!(code, 1, "a finished instance cannot be cancelled");

    // export an instance, import it into another store
    let file = dir.path().join("ok.snapshot");
    let (code, _, err) = durable(dir.path(), &["export", "ok", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let other = tempfile::tempdir().unwrap();
    let (code, _, err) = durable(other.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = durable(other.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(code, 1, "a second import is refused: {err}");
    assert!(err.contains("[DURABLE-EXISTS]"), "{err}");
    let (_, out, _) = durable(other.path(), &["describe", "ok", "--json"]);
    assert!(out.contains("Completed"), "{out}");
    std::fs::write(&file, b"not a snapshot").unwrap();
    let (code, _, err) = durable(other.path(), &["import", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a snapshot file"), "{err}");

    // the service carries out the request when it opens the store
    let rt = Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .open(dir.path())
        .await
        .unwrap();
    match rt.handle::<waiter>("waiting").result().await {
        Err(durable_runtime::ResultError::Terminated { reason, .. }) => {
            assert_eq!(reason, "cleanup")
        }
        other => panic!("expected terminated, got {other:?}"),
    }
    rt.shutdown().await;
}

// a new version whose `Signal` variant has another shape (`n` is a u64 now)
#[workflow(name = "waiter", version = 2)]
async fn waiter_v2(n: u64) -> Result<u64, WorkflowError> {
    let got: u64 = signal("go").await?;
    Ok(n + got)
}

fn durable_without_db(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .output()
        .expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn exports_a_set_imports_it_all_or_nothing_and_checks_a_deploy_against_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::builder()
            .workflow::<doubler>()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap();
        rt.start("done", doubler(2), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        rt.start("w1", waiter(1), IdPolicy::Reject).await.unwrap();
        rt.start("w2", waiter(2), IdPolicy::Reject).await.unwrap();
        rt.shutdown().await;
    }
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_owned();

    let (code, out, err) = durable(dir.path(), &["export", "--all", &path("all.snap")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 3 instances"), "{out}");
    let (code, out, err) = durable(
        dir.path(),
        &["export", "--workflow", "waiter", &path("waiters.snap")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 2 instances"), "{out}");
    let (code, _, err) = durable(dir.path(), &["export", "--all", "w1", &path("x.snap")]);
    assert_eq!(code, 2, "a set export takes only the file: {err}");

    // bad files: each refused with its own message, nothing imported
    let good = std::fs::read(path("all.snap")).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    let mut future = good.clone();
    future[16] = 9;
    let other = tempfile::tempdir().unwrap();
    for (name, bytes, says) in [
        (
            "truncated.snap",
            good[..good.len() - 9].to_vec(),
            "truncated",
        ),
        ("flipped.snap", flipped, "corrupt"),
        ("future.snap", future, "format 9 is not supported"),
        ("empty.snap", Vec::new(), "not a snapshot file"),
    ] {
        std::fs::write(path(name), bytes).unwrap();
        let (code, _, err) = durable(other.path(), &["import", &path(name)]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let (_, out, _) = durable(other.path(), &["list", "--json"]);
    assert_eq!(out.trim(), "[]", "nothing was imported");

    // a set is all or nothing: one existing id refuses the whole set
    let (code, _, err) = durable(other.path(), &["import", &path("waiters.snap")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = durable(other.path(), &["import", &path("all.snap")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[DURABLE-EXISTS]"), "{err}");
    let (_, out, _) = durable(other.path(), &["list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "`done` was not written: {out}"
    );
    assert_eq!(list[0]["version"], 1);
    let (code, _, err) = durable(other.path(), &["import", "--replace", &path("all.snap")]);
    assert_eq!(code, 0, "{err}");

    // the check: the same code resumes everything; v2 alone would park the waiters
    let same = path("same.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .manifest()
        .write(&same)
        .unwrap();
    let changed = path("changed.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter_v2>()
        .manifest()
        .write(&changed)
        .unwrap();
    let (code, out, err) = durable_without_db(&[
        "check",
        "--manifest",
        &same,
        "--snapshots",
        &path("all.snap"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 instances, 0 would park"), "{out}");
    let (code, out, err) = durable_without_db(&[
        "check",
        "--manifest",
        &changed,
        "--snapshots",
        &path("all.snap"),
    ]);
    assert_eq!(code, 5, "{out}{err}");
    assert!(
        out.contains("WOULD PARK") && out.contains("2 would park"),
        "{out}"
    );
    let (code, out, err) = durable(dir.path(), &["check", "--manifest", &changed, "--json"]);
    assert_eq!(code, 5, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"].as_array().map(Vec::len), Some(3), "{out}");
    let (code, _, err) = durable_without_db(&["check", "--manifest", &same]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--db"), "{err}");
}
