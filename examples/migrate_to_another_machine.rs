//! Moves a live workflow to another machine: a long onboarding workflow
//! starts in one store, waits for a signal half-way, is exported to a
//! snapshot file, imported by a second process with its own store, and
//! finishes there.
//!
//! ```text
//! cargo run --example migrate_to_another_machine
//! ```
//!
//! The second "machine" is this same program started again as a child
//! process with `--finish SNAPSHOT DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

use durable_runtime::prelude::*;
use durable_runtime::snapshot::Snapshot;

#[activity]
async fn create_account(user: String) -> Result<String, ActivityError> {
    println!("  [pid {}] create_account({user})", std::process::id());
    Ok(format!("acct-{user}"))
}

#[activity]
async fn send_welcome(account: String) -> Result<(), ActivityError> {
    println!("  [pid {}] send_welcome({account})", std::process::id());
    Ok(())
}

#[workflow]
async fn onboarding(user: String) -> Result<String, WorkflowError> {
    let account = create_account(user.clone()).await?;
    // a human step: the workflow waits here (for days, in real life)
    let plan: String = signal("plan chosen").await?;
    send_welcome(account.clone()).await?;
    Ok(format!("{user} onboarded as {account} on the {plan} plan"))
}

async fn first_machine(dir: &Path, snapshot: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .workflow::<onboarding>()
        .open(dir.join("store-a"))
        .await?;
    let h = rt
        .start("user-7", onboarding("ada".into()), IdPolicy::UseExisting)
        .await?;
    while rt.running_instances() > 0 || h.describe()?.variant != "Signal" {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    println!(
        "machine A: `user-7` waits at {} (step {})",
        h.describe()?.variant,
        h.describe()?.step
    );
    let file = rt.export("user-7")?.to_bytes()?;
    std::fs::write(snapshot, &file)?;
    println!(
        "machine A: exported {} bytes to {}",
        file.len(),
        snapshot.display()
    );
    // it lives on machine B from now on
    h.terminate("moved to machine B").await?;
    rt.shutdown().await;
    Ok(())
}

async fn second_machine(snapshot: &Path, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .workflow::<onboarding>()
        .open(dir)
        .await?;
    let snap = Snapshot::from_bytes(&std::fs::read(snapshot)?)?;
    rt.import(&snap, false).await?;
    println!(
        "machine B: imported `{}` ({}), sending the signal it waits for",
        snap.id, snap.workflow
    );
    rt.signal("user-7", "plan chosen", &"yearly".to_string())
        .await?;
    let out = rt.handle::<onboarding>("user-7").result().await??;
    println!("machine B: {out}");
    for event in rt.history("user-7")? {
        println!("machine B: history {:>2} {:?}", event.seq, event.kind);
    }
    rt.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--finish") {
        let (snapshot, dir) = (
            args.get(2).ok_or("missing SNAPSHOT")?,
            args.get(3).ok_or("missing DIR")?,
        );
        return second_machine(Path::new(snapshot), Path::new(dir)).await;
    }
    let temp = tempfile::tempdir()?;
    let snapshot: PathBuf = temp.path().join("user-7.snapshot");
    println!(
        "A live workflow moved between machines: it starts in one store, is exported while it waits for a signal, imported by a second process with its own store, and finishes there. It runs to the end by itself; the stores are temporary (`durable export` / `durable import` do the same by hand)."
    );
    println!("machine A (pid {})", std::process::id());
    first_machine(temp.path(), &snapshot).await?;
    let status = Command::new(std::env::current_exe()?)
        .arg("--finish")
        .arg(&snapshot)
        .arg(temp.path().join("store-b"))
        .status()?;
    if !status.success() {
        return Err(format!("machine B failed: {status}").into());
    }
    println!("done: the workflow started on machine A and finished on machine B");
    Ok(())
}
