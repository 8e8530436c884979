//! A crash at every checkpoint of your own workflow (feature `testing`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ListFilter;
use crate::runtime::{Builder, IdPolicy, Runtime};
use crate::store::mem::MemStore;
use crate::testing::TestEnv;
use crate::workflow::{Workflow, WorkflowCall};

/// What [`crash_sweep`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Checkpoints (acknowledged commits, opening included) of the run
    /// without a crash.
    pub checkpoints: u64,
    /// Runs crashed, one after each checkpoint.
    pub crashes: u64,
    /// Activity attempts run again after a reboot because their result
    /// was not durable at the crash (allowed: at least once). An attempt
    /// whose result was durable never runs again, or the sweep fails.
    pub reruns: u64,
}

/// Why [`crash_sweep`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The run without a crash did not finish.
    #[error("the run without a crash failed: {0}")]
    Uncrashed(String),
    /// After the crash following checkpoint `checkpoint` and a reboot, a
    /// guarantee broke.
    #[error("crashed after checkpoint {checkpoint}: {what}")]
    Broken {
        /// The checkpoints acknowledged before the crash.
        checkpoint: u64,
        /// What broke.
        what: String,
    },
}

/// The activity attempts a runtime ran: `(idempotency key, attempt)`.
type Ran = Arc<Mutex<Vec<(String, u32)>>>;

fn witnessed(builder: Builder, ran: &Ran) -> Builder {
    let ran = ran.clone();
    builder.witness(move |ctx| {
        ran.lock()
            .expect("witness lock poisoned")
            .push((ctx.idempotency_key.clone(), ctx.attempt));
    })
}

/// Runs workflow `W` as instance `id` once without a crash, counting its
/// checkpoints, then once per checkpoint `k`: the store loses power right
/// after `k` acknowledged commits (what was not synced is lost), the
/// process reboots, and the instance runs to its end. Each run must end
/// with the uncrashed run's output, and no activity attempt whose result
/// was durable at the crash may run again.
///
/// `builder` makes a fresh builder each time (register the workflow, its
/// children, mocks); each run is a [`TestEnv`] (in-memory store, skipping
/// clock), so timers cost nothing. The workflow must finish on its own:
/// one waiting for a signal would wait forever.
///
/// ```
/// use durable_runtime::prelude::*;
/// use durable_runtime::testing::crash_sweep;
///
/// #[activity]
/// async fn reserve(item: String) -> Result<u64, ActivityError> {
///     Ok(item.len() as u64)
/// }
///
/// #[workflow]
/// async fn order(items: Vec<String>) -> Result<u64, WorkflowError> {
///     let mut total = 0;
///     for item in items {
///         total += reserve(item).await?;
///     }
///     Ok(total)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let items = vec!["tea".to_string(), "cups".to_string()];
/// let report = crash_sweep(
///     || Runtime::builder().workflow::<order>(),
///     "order-1",
///     || order(items.clone()),
/// )
/// .await
/// .unwrap();
/// assert_eq!(report.crashes, report.checkpoints);
/// # }
/// ```
pub async fn crash_sweep<W>(
    builder: impl Fn() -> Builder,
    id: &str,
    call: impl Fn() -> WorkflowCall<W>,
) -> Result<SweepReport, SweepError>
where
    W: Workflow,
    W::Output: PartialEq + std::fmt::Debug,
{
    let store = MemStore::new();
    let ran = Ran::default();
    let env = TestEnv::open(witnessed(builder(), &ran), store.clone())
        .await
        .map_err(|e| SweepError::Uncrashed(e.to_string()))?;
    let expected = run_to_end(&env, id, call())
        .await
        .map_err(SweepError::Uncrashed)?;
    env.shutdown().await;
    let checkpoints = store.commits();

    let mut reruns = 0;
    for k in 0..checkpoints {
        let broken = |what: String| SweepError::Broken {
            checkpoint: k,
            what,
        };
        let store = MemStore::new();
        store.crash_after(k);
        let before = Ran::default();
        if let Ok(env) = TestEnv::open(witnessed(builder(), &before), store.clone()).await {
            // until the power goes (the store refuses commits from then on,
            // and what waits for one may wait for ever)
            tokio::select! {
                _ = run_to_end(&env, id, call()) => {}
                () = power_gone(&store) => {}
            }
            env.shutdown().await;
        }

        // the machine boots again with what was synced
        let rebooted = store.reboot();
        let durable = durable_steps(builder(), &rebooted).await.map_err(&broken)?;
        let after = Ran::default();
        let env = TestEnv::open(witnessed(builder(), &after), rebooted)
            .await
            .map_err(|e| broken(format!("reopening after the crash: {e}")))?;
        let out = run_to_end(&env, id, call()).await.map_err(&broken)?;
        env.shutdown().await;
        if out != expected {
            return Err(broken(format!(
                "the output is {out:?}, without a crash {expected:?}"
            )));
        }
        let before = before.lock().expect("witness lock poisoned").clone();
        for (key, attempt) in after.lock().expect("witness lock poisoned").iter() {
            if recorded(key, &durable).map_err(&broken)? {
                return Err(broken(format!(
                    "activity attempt {key} #{attempt} ran again though its result was durable"
                )));
            }
            if before.contains(&(key.clone(), *attempt)) {
                reruns += 1;
            }
        }
    }
    Ok(SweepReport {
        checkpoints,
        crashes: checkpoints,
        reruns,
    })
}

/// Whether the activity call with idempotency key `key` had its result
/// durable, by each instance's durable step and finished parts.
fn recorded(key: &str, durable: &HashMap<String, (u64, Vec<bool>)>) -> Result<bool, String> {
    let (instance, step, part) =
        key_step(key).ok_or_else(|| format!("an idempotency key not understood: {key}"))?;
    let Some((durable_step, parts_done)) = durable.get(&instance) else {
        return Ok(false);
    };
    Ok(step < *durable_step
        || (step == *durable_step && part.is_some_and(|p| parts_done.get(p) == Some(&true))))
}

/// Resolves once `store` has lost its power.
async fn power_gone(store: &MemStore) {
    while !store.has_crashed() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Starts (or finds) instance `id` and waits for its output.
async fn run_to_end<W: Workflow>(
    rt: &Runtime,
    id: &str,
    call: WorkflowCall<W>,
) -> Result<W::Output, String> {
    let handle = rt
        .start(id, call, IdPolicy::UseExisting)
        .await
        .map_err(|e| format!("start: {e}"))?;
    handle.result().await.map_err(|e| format!("result: {e}"))
}

/// Each instance's durable step and which parts of it had finished.
async fn durable_steps(
    builder: Builder,
    store: &MemStore,
) -> Result<HashMap<String, (u64, Vec<bool>)>, String> {
    let inspect = builder
        .resume_on_open(false)
        .open_store(store.clone())
        .await
        .map_err(|e| format!("reopening to inspect: {e}"))?;
    let listed = inspect
        .list(&ListFilter::default())
        .map_err(|e| e.to_string());
    inspect.shutdown().await;
    Ok(listed?
        .into_iter()
        .map(|d| (d.id, (d.step, d.parts_done)))
        .collect())
}

/// The instance, step and part of an activity's idempotency key
/// `<instance>/<incarnation: 16 hex digits>/<step>[/<part>]` (an instance
/// id may itself hold `/`: a child's is `<parent>/<step>`).
#[doc(hidden)]
pub fn key_step(key: &str) -> Option<(String, u64, Option<usize>)> {
    let words: Vec<&str> = key.split('/').collect();
    let at = words
        .iter()
        .rposition(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))?;
    let step = words.get(at + 1)?.parse().ok()?;
    let part = match words.get(at + 2) {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    if words.len() > at + 3 {
        return None;
    }
    Some((words[..at].join("/"), step, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_instance_step_and_part() {
        let inc = "00ff00ff00ff00ff";
        assert_eq!(
            key_step(&format!("o-1/{inc}/3")),
            Some(("o-1".into(), 3, None))
        );
        assert_eq!(
            key_step(&format!("p/2/{inc}/4/1")),
            Some(("p/2".into(), 4, Some(1)))
        );
        assert_eq!(key_step("no-incarnation/3"), None);
    }

    /// The sweep's rerun check flags a call of a step before the durable
    /// one, and a finished part of the durable step; not the rest.
    #[test]
    fn a_call_whose_result_was_durable_is_flagged() {
        let inc = "00ff00ff00ff00ff";
        let durable = HashMap::from([("o".to_string(), (3, vec![true, false]))]);
        let flagged = |key: String| recorded(&key, &durable).unwrap();
        assert!(flagged(format!("o/{inc}/2")));
        assert!(flagged(format!("o/{inc}/3/0")));
        assert!(!flagged(format!("o/{inc}/3/1")));
        assert!(!flagged(format!("o/{inc}/3")));
        assert!(!flagged(format!("o/{inc}/4")));
        assert!(!flagged(format!("other/{inc}/1")));
    }
}
