//! The workload shared by the crash worker and the crash tests: the order
//! workflow of the examples, whose activities append one line per execution
//! to an effects log so a supervisor can count what ran.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Where activities log, and which process incarnation is logging.
pub struct EffectsLog {
    /// The log file.
    pub path: PathBuf,
    /// Distinguishes the runs of the worker on one directory.
    pub incarnation: u32,
}

/// Set once by the worker before starting workflows.
pub static EFFECTS: OnceLock<EffectsLog> = OnceLock::new();

/// Appends `<incarnation> <activity> <idempotency key> <attempt>` and syncs it.
fn effect(activity: &str) -> Result<(), ActivityError> {
    let ctx =
        ActivityContext::current().ok_or_else(|| ActivityError::terminal("no activity context"))?;
    let Some(log) = EFFECTS.get() else {
        return Err(ActivityError::terminal(format!(
            "{activity} ran in a process without an effects log"
        )));
    };
    let line = format!(
        "{} {activity} {} {}\n",
        log.incarnation, ctx.idempotency_key, ctx.attempt
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log.path)
        .map_err(|e| ActivityError::retryable(e.to_string()))?;
    f.write_all(line.as_bytes())
        .map_err(|e| ActivityError::retryable(e.to_string()))?;
    f.sync_data()
        .map_err(|e| ActivityError::retryable(e.to_string()))
}

/// An order to process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub order_id: String,
    /// Amount in cents.
    pub cents: u64,
    /// A note held across every await: 9,000 letters that do not compress
    /// on every other order, so the sweeps cover states stored field by
    /// field, the note in two pieces (written once, referred to by later
    /// checkpoints, deleted with the last).
    pub note: String,
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn check_fraud(order_id: String, cents: u64) -> Result<(), ActivityError> {
    effect("check_fraud")?;
    if cents > 1_000_000 {
        return Err(ActivityError::terminal(format!(
            "{order_id} looks fraudulent"
        )));
    }
    Ok(())
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    let _ = order;
    effect("prepare_shipment")
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn charge(order_id: String, cents: u64) -> Result<String, ActivityError> {
    effect("charge")?;
    // the first attempt of every other order fails, so retries cross crashes too
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    if cents.is_multiple_of(2) && attempt == 1 {
        return Err(ActivityError::retryable("payment service busy"));
    }
    Ok(format!("ch-{order_id}-{cents}"))
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn ship(order: Order, charge_id: String) -> Result<String, ActivityError> {
    effect("ship")?;
    Ok(format!(
        "shipped {} ({charge_id}) note {}",
        order.order_id,
        order.note.len()
    ))
}

/// The seed's order workflow.
#[workflow]
pub async fn process_order(order: Order) -> Result<String, WorkflowError> {
    check_fraud(order.order_id.clone(), order.cents).await?;
    prepare_shipment(order.clone()).await?;
    let charge_id = charge(order.order_id.clone(), order.cents).await?;
    let confirmation = ship(order, charge_id).await?;
    Ok(confirmation)
}

/// The order number `i` of a run.
pub fn order(i: usize) -> Order {
    Order {
        order_id: format!("order-{i}"),
        cents: 100 + i as u64,
        note: if i % 2 == 1 {
            letters(i as u64, 9000)
        } else {
            String::new()
        },
    }
}

/// `n` letters drawn by a xorshift generator seeded with `seed`: the same
/// for the same seed, and nothing a compressor can shrink much.
fn letters(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// What an uncrashed run returns for order `i`.
pub fn expected(i: usize) -> String {
    let o = order(i);
    format!(
        "shipped {} (ch-{}-{}) note {}",
        o.order_id,
        o.order_id,
        o.cents,
        o.note.len()
    )
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn revise(id: String, n: u32) -> Result<String, ActivityError> {
    effect("revise")?;
    Ok(format!("rev{n}-{id}"))
}

/// A draft of 12,000 letters that do not compress, held across four
/// awaits and revised twice: each revision is a new stored value (two
/// pieces) that supersedes the one before, in the revision's batch, and
/// the third await's checkpoint refers to the second draft unchanged.
#[workflow]
pub async fn dossier(i: u32) -> Result<String, WorkflowError> {
    let id = format!("dossier-{i}");
    let mut draft = letters(u64::from(i) + 1_000, 12_000);
    let first = revise(id.clone(), 1).await?;
    draft.replace_range(..first.len(), &first);
    let second = revise(id.clone(), 2).await?;
    let third = revise(id.clone(), 3).await?;
    draft.push_str(&third);
    let fourth = revise(id, 4).await?;
    Ok(format!("{second} {fourth} {}", digest(&draft)))
}

/// The length and an FNV-1a hash of `text`.
fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}:{hash:016x}", text.len())
}

/// What an uncrashed run of `dossier(i)` returns.
pub fn dossier_expected(i: usize) -> String {
    let id = format!("dossier-{i}");
    let mut draft = letters(i as u64 + 1_000, 12_000);
    let first = format!("rev1-{id}");
    draft.replace_range(..first.len(), &first);
    draft.push_str(&format!("rev3-{id}"));
    format!("rev2-{id} rev4-{id} {}", digest(&draft))
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn leg(name: String) -> Result<u32, ActivityError> {
    effect(&name)?;
    Ok(name.len() as u32)
}

/// A child of `journey`: one activity, then continue-as-new once.
#[workflow]
pub async fn side_trip(round: u32) -> Result<u32, WorkflowError> {
    let n = leg("side".into()).await?;
    if round == 0 {
        return continue_as_new(side_trip(1)).await;
    }
    Ok(n + round)
}

/// Where the journey's `hand_out` activity leaves instance `id`'s promise token.
pub fn token_path(dir: &std::path::Path, id: &str) -> PathBuf {
    dir.join("tokens").join(id)
}

/// Hands a promise's token to the outside: the worker completes it from
/// `DIR/tokens/<instance id>` (written whole, then renamed).
#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn hand_out(token: String) -> Result<(), ActivityError> {
    effect("hand_out")?;
    let fail = |e: std::io::Error| ActivityError::retryable(e.to_string());
    let log = EFFECTS
        .get()
        .ok_or_else(|| ActivityError::terminal("no effects log"))?;
    let dir = log.path.parent().unwrap_or(std::path::Path::new("."));
    let (id, _) = token
        .split_once('#')
        .ok_or_else(|| ActivityError::terminal(format!("not a token: {token}")))?;
    let path = token_path(dir, id);
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(fail)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &token).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}

/// Encodes `chunks` chunks, reporting each with a heartbeat: the first
/// attempt fails after chunk 1 (its details are stored then), and an
/// attempt carries on after the last chunk an earlier one reported — after
/// a retry, or a kill (the first heartbeat of an attempt is stored at once).
#[activity(
    max_attempts = 5,
    initial_interval_ms = 1,
    heartbeat_timeout_ms = 60_000
)]
async fn encode_chunks(chunks: u32) -> Result<u32, ActivityError> {
    effect("encode")?;
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    let first = heartbeat_details::<u32>().map_or(0, |done| done + 1);
    for chunk in first..chunks {
        heartbeat(&chunk)?;
        if attempt == 1 && chunk == 1 {
            return Err(ActivityError::retryable("the encoder crashed"));
        }
    }
    Ok(chunks)
}

/// The update the journey takes: a number, replied to doubled.
pub const BUMP: durable_runtime::update::UpdateDef<u32, u32> =
    durable_runtime::update::UpdateDef::new("bump");

/// A journey through every kind of step: an activity, a durable timer, a
/// signal, an update and its reply, a promise completed from outside, a
/// select, a child workflow (which continues as new), parallel activities,
/// an activity that heartbeats, a saga compensation and a helper.
#[workflow]
pub async fn journey(i: u32) -> Result<String, WorkflowError> {
    let first = leg("step".into()).await?;
    sleep(std::time::Duration::from_millis(3)).await?;
    let go: u32 = signal("go").await?;
    let bump = BUMP.receive().await?;
    let bumped = *bump.request();
    bump.reply(bumped * 2).await;
    let paid: durable_runtime::promise::Promise<u32> = durable_runtime::promise::promise().await;
    hand_out(paid.token().to_owned()).await?;
    let paid: u32 = paid.wait().await?;
    // nobody sends "never": the timer wins
    let waited = match select(
        signal::<u32>("never"),
        sleep(std::time::Duration::from_millis(2)),
    )
    .await
    {
        durable_runtime::command::Either::Left(_) => 100,
        durable_runtime::command::Either::Right(_) => 0,
    };
    let side = side_trip(0).await??;
    let calls: Vec<_> = (0..3).map(|_| leg("part".into())).collect();
    let parts = join_all(calls).limit(2).await;
    let mut total = first + go + bumped + paid + waited + side;
    for p in parts {
        total += p?;
    }
    total += encode_chunks(3).await?;
    let mut saga = Saga::new();
    saga.add(leg("undo".into()));
    let undone = saga.compensate().await;
    let helped = two_legs().await?;
    Ok(format!(
        "journey {i}: {total} undone {} helped {helped}",
        undone.len()
    ))
}

/// Two activities in a loop, in a helper: steps of the journey's instance,
/// its state nested in the journey's.
#[helper]
async fn two_legs() -> Result<u32, WorkflowError> {
    let mut n = 0;
    for _ in 0..2 {
        n += leg("helper".into()).await?;
    }
    Ok(n)
}

/// What an uncrashed run of `journey(i)` returns when signalled with `i`
/// and its promise completed with `i`.
pub fn journey_expected(i: usize) -> String {
    // step (4) + go (i) + bump (i) + paid (i) + timer won (0) + side trip ("side" 4 + round
    // 1) + 3 parts (4 each) + 3 chunks encoded
    format!(
        "journey {i}: {} undone 1 helped 12",
        4 + 3 * i + 5 + 3 * 4 + 3
    )
}

/// Waits a day for nothing; the worker cancels it, and it compensates.
#[workflow]
pub async fn guard(i: u32) -> Result<String, WorkflowError> {
    match sleep(std::time::Duration::from_secs(86_400)).await {
        Ok(()) => Ok(format!("guard {i}: slept a day")),
        Err(_) => {
            leg("undo".into()).await?;
            Ok(format!("guard {i}: cancelled, undone"))
        }
    }
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn tock() -> Result<String, ActivityError> {
    effect("tock")?;
    let ctx =
        ActivityContext::current().ok_or_else(|| ActivityError::terminal("no activity context"))?;
    // `<id>/<incarnation>/<step>`: the incarnation is random, `<id>/<step>`
    // is what names the run
    let key = ctx.idempotency_key;
    let named = key
        .rsplit_once('/')
        .and_then(|(run, step)| Some(format!("{}/{step}", run.rsplit_once('/')?.0)));
    named.ok_or_else(|| ActivityError::terminal(format!("unexpected idempotency key {key}")))
}

/// One scheduled run: a single activity, whose result names its run.
#[workflow]
pub async fn tick() -> Result<String, WorkflowError> {
    let key = tock().await?;
    Ok(format!("tock {key}"))
}

/// The id of the `i`-th run of the crash test's schedule `tick`, which runs
/// every minute from 2030-01-01T00:01:00Z (where `TestClock::new` stands,
/// plus a minute).
pub fn tick_run(i: usize) -> String {
    format!("tick@2030-01-01T00:{:02}:00Z", i + 1)
}

/// Version 1 of a workflow that waits for one signal: the crash suite parks
/// instances of it, then migrates them while being killed.
#[workflow(name = "ledger")]
pub async fn ledger_v1(i: u32) -> Result<String, WorkflowError> {
    let amount: u64 = signal("post").await?;
    Ok(format!("v1 {i} {amount}"))
}

/// Version 2: the state at the signal also holds a currency.
#[workflow(name = "ledger", version = 2)]
pub async fn ledger_v2(i: u32) -> Result<String, WorkflowError> {
    let currency: String = "EUR".to_owned();
    let amount: u64 = signal("post").await?;
    Ok(format!("v2 {i} {amount} {currency}"))
}

/// The migration of a v1 instance waiting at the signal: its currency was
/// never recorded.
pub fn ledger_migration() -> durable_runtime::migration::Migration<ledger_v1, ledger_v2> {
    durable_runtime::migration::Migration::new().variant(ledger_v1::Signal, |(i,)| {
        ledger_v2::Signal.state(("migrated".to_owned(), i))
    })
}

/// What a migrated ledger instance `i` returns.
pub fn ledger_expected(i: usize) -> String {
    format!("v2 {i} {} migrated", i * 10)
}

/// Version 1 of a workflow asleep on a timer: the crash suite migrates
/// instances of it when their timers fire (open does not read sleepers),
/// while being killed.
#[workflow(name = "nap")]
pub async fn nap_v1(i: u32) -> Result<String, WorkflowError> {
    sleep(std::time::Duration::from_secs(86_400)).await?;
    Ok(format!("v1 {i}"))
}

/// Version 2: the state at the sleep also holds a note.
#[workflow(name = "nap", version = 2)]
pub async fn nap_v2(i: u32) -> Result<String, WorkflowError> {
    let note: String = "kept".to_owned();
    sleep(std::time::Duration::from_secs(86_400)).await?;
    Ok(format!("v2 {i} {note}"))
}

/// The migration of a v1 instance asleep: its note was never recorded.
pub fn nap_migration() -> durable_runtime::migration::Migration<nap_v1, nap_v2> {
    durable_runtime::migration::Migration::new().variant(nap_v1::Sleep, |(i,)| {
        nap_v2::Sleep.state((i, "migrated".to_owned()))
    })
}

/// What a nap instance `i` migrated while asleep returns.
pub fn nap_expected(i: usize) -> String {
    format!("v2 {i} migrated")
}

/// A scheduled run that holds until signalled `finish` (or cancelled):
/// lets the crash suite make runs overlap on purpose.
#[workflow]
pub async fn held() -> Result<String, WorkflowError> {
    let _: () = signal("finish").await?;
    Ok("finished".to_owned())
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn open_tally() -> Result<(), ActivityError> {
    effect("open_tally")
}

/// Runs one activity, then gathers `expected` signals `item`, each a
/// sender's number and its own count, and returns what each sender sent
/// in the order received ([`tally_text`]): several processes signalling
/// one instance at once lose and reorder nothing per sender.
#[workflow]
pub async fn tally(expected: u32) -> Result<String, WorkflowError> {
    open_tally().await?;
    let mut got: Vec<(u32, u32)> = Vec::new();
    while (got.len() as u32) < expected {
        let item: (u32, u32) = signal("item").await?;
        got.push(item);
    }
    Ok(tally_text(&got))
}

/// `sender:n,n,.. sender:n,..`, senders in order, each one's numbers in
/// the order received.
pub fn tally_text(got: &[(u32, u32)]) -> String {
    let mut by_sender: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for (sender, n) in got {
        by_sender.entry(*sender).or_default().push(n.to_string());
    }
    by_sender
        .into_iter()
        .map(|(sender, ns)| format!("{sender}:{}", ns.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends the engine's logs to stderr for a worker process the tests
/// supervise, at `default` level unless `RUST_LOG` says otherwise.
pub fn log_to_stderr(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}
