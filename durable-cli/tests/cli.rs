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
