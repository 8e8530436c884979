//! The `--quick` smoke run: every scenario runs and reports consistent
//! counts. No timing is asserted: the figures depend on the machine.

use serde_json::Value;

#[test]
fn quick_run_reports_every_scenario_with_consistent_counts() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_durable-bench"))
        .args(["--quick", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for section in [
        "1. throughput",
        "2. latency",
        "3. the limit",
        "4. recovery",
        "5. idle",
        "6. storage",
        "7. compiler cost",
    ] {
        assert!(table.contains(section), "{section} missing from:\n{table}");
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let n = r["sizes"]["workflows"].as_u64().unwrap();
    let rows = r["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "one row per in-flight count");
    for (t, l) in rows.iter().zip(r["limit"].as_array().unwrap()) {
        assert_eq!(t["workflows"].as_u64(), Some(n));
        // five checkpoints per order: the start and one per activity
        assert_eq!(t["commits"].as_u64(), Some(5 * n));
        assert_eq!(
            l["commits"], t["commits"],
            "the raw run replays the same commits"
        );
        assert!(t["flushes"].as_u64().unwrap() >= 1);
    }
    let recovery = &r["recovery"];
    assert_eq!(recovery["resumed"], recovery["workflows"]);
    let sleepers = &r["sleepers"];
    assert_eq!(sleepers["tasks_while_asleep"].as_u64(), Some(0));
    let storage = &r["storage"];
    assert_eq!(storage["deleted_by_retention"], storage["workflows"]);
    assert_eq!(r["compiler"].as_array().unwrap().len(), 4);
}
