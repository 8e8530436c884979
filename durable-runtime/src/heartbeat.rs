//! Heartbeats: what a long activity attempt reports while it runs.
//!
//! An attempt calls [`heartbeat`] with its progress (any storable value);
//! the runtime keeps the latest, stores it now and then (the first at once,
//! then at most every 80% of the heartbeat timeout, or every 30 s without
//! one) and when the attempt fails, and the next attempt of the same call
//! — after a retry, a crash or a takeover — reads it with
//! [`heartbeat_details`] to carry on where the last one was. With a
//! heartbeat timeout set (`#[activity(heartbeat_timeout_ms = ..)]`,
//! `ActivityCall::with_heartbeat_timeout`), an attempt that goes that long
//! without a heartbeat fails (kind `timeout`) and is retried by its
//! policy; and a heartbeat is where an attempt learns it should stop (its
//! instance was cancelled or terminated, or the runtime is shutting down).
//!
//! ```
//! use durable_runtime::prelude::*;
//!
//! /// Transcodes `chunks` chunks, resuming after the last one reported.
//! #[activity(heartbeat_timeout_ms = 30_000)]
//! async fn transcode(video: String, chunks: u32) -> Result<u32, ActivityError> {
//!     let first = heartbeat_details::<u32>().map_or(0, |done| done + 1);
//!     for chunk in first..chunks {
//!         // ... encode chunk `chunk` of `video` ...
//!         # let _ = &video;
//!         heartbeat(&chunk)?;
//!     }
//!     Ok(chunks)
//! }
//! ```
//!
//! Details are read by the layout they were written with: details written
//! by a build whose type differs read as none (the attempt starts over),
//! never as another value.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::task::AtomicWaker;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::activity::ActivityError;
use crate::clock::{Clock, now_ms};
use crate::codec;
use crate::store::{Store, keys};

tokio::task_local! {
    static BEAT: Arc<Beat>;
}

/// How often the details of a heartbeat are stored at most without a
/// heartbeat timeout.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Records `details` as the progress of the running activity attempt: the
/// next attempt of the call reads them with [`heartbeat_details`]; with a
/// heartbeat timeout, each call also tells the runtime the attempt is
/// alive. Cheap: the details are stored now and then, not at every call.
/// Outside an activity (a unit test calling the body) it does nothing.
///
/// # Errors
/// [`ActivityError::cancelled`] (kind `cancelled`) when the attempt should
/// stop: its instance was cancelled or terminated, it ran past a timeout,
/// or the runtime is shutting down (return it, with `?`, after cleaning
/// up); a terminal error of kind `limit` when the encoded details exceed
/// the runtime's result limit (`Limits::result_bytes`), of kind `codec`
/// when they do not encode.
pub fn heartbeat<T: Serialize + DeserializeOwned + 'static>(
    details: &T,
) -> Result<(), ActivityError> {
    let Ok(beat) = BEAT.try_with(Arc::clone) else {
        return Ok(());
    };
    let bytes = codec::encode(details)
        .map_err(|e| ActivityError::terminal(e.to_string()).with_kind("codec"))?;
    if bytes.len() > beat.limit {
        let why = crate::limits::over(
            "heartbeat's details",
            bytes.len(),
            beat.limit,
            "result_bytes",
        );
        return Err(ActivityError::terminal(why).with_kind("limit"));
    }
    let stored = Details {
        layout: crate::layout::value_of::<T>().hash,
        bytes,
    };
    let encoded = codec::encode(&stored)
        .map_err(|e| ActivityError::terminal(e.to_string()).with_kind("codec"))?;
    *beat.unsaved.lock().expect("heartbeat lock poisoned") = Some(encoded);
    beat.last_ms.store(now_ms(&*beat.clock), Ordering::SeqCst);
    beat.beaten_once.store(true, Ordering::SeqCst);
    beat.news.store(true, Ordering::SeqCst);
    beat.watcher.wake();
    if beat.stop.load(Ordering::SeqCst) {
        return Err(ActivityError::cancelled());
    }
    Ok(())
}

/// The details of the last heartbeat an earlier attempt of this activity
/// call recorded (in this process, or stored before a restart or a
/// takeover); `None` for the first attempt, outside an activity, or when
/// they were written as another type (a deploy changed it: the attempt
/// starts over rather than misread them).
pub fn heartbeat_details<T: DeserializeOwned + 'static>() -> Option<T> {
    let beat = BEAT.try_with(Arc::clone).ok()?;
    let bytes = beat.earlier()?;
    let details: Details = match codec::decode(&bytes) {
        Ok(details) => details,
        Err(e) => {
            tracing::warn!(error = %e, "stored heartbeat details do not decode; read as none");
            return None;
        }
    };
    let layout = crate::layout::value_of::<T>().hash;
    if details.layout != layout {
        tracing::warn!(
            written = format_args!("{:016x}", details.layout),
            reading = format_args!("{layout:016x}"),
            "heartbeat details were written as another type than `{}`; read as none",
            std::any::type_name::<T>()
        );
        return None;
    }
    codec::decode(&details.bytes)
        .inspect_err(
            |e| tracing::warn!(error = %e, "heartbeat details do not decode; read as none"),
        )
        .ok()
}

/// The stored form of a heartbeat's details: the layout hash of their
/// type, then their bytes.
#[derive(Serialize, Deserialize)]
struct Details {
    layout: u64,
    bytes: Vec<u8>,
}

/// Earlier details: known (carried from the previous attempt in this
/// process, or read already) or still in the store.
enum Earlier {
    Known(Option<Vec<u8>>),
    Unread,
}

/// What one attempt and the runtime share about its heartbeats.
pub(crate) struct Beat {
    clock: Arc<dyn Clock>,
    /// Where an earlier attempt's details are read (when first asked);
    /// weak: an attempt outliving its runtime (in its grace after a cancel)
    /// must not keep the store open.
    store: std::sync::Weak<dyn Store>,
    /// The largest details accepted (bytes).
    limit: usize,
    /// The runtime clock's time of the last heartbeat (the attempt's start
    /// before the first), ms.
    last_ms: AtomicU64,
    /// A heartbeat came since the watcher last looked.
    news: AtomicBool,
    /// The watcher, woken by each heartbeat (an atomic waker: most
    /// attempts never send one, and registering costs next to nothing).
    watcher: AtomicWaker,
    /// The latest heartbeat's stored form, not yet stored.
    unsaved: Mutex<Option<Vec<u8>>>,
    /// The latest heartbeat's stored form (what the next attempt reads).
    latest: Mutex<Option<Vec<u8>>>,
    earlier: Mutex<Option<Earlier>>,
    /// Asked to stop: its heartbeats answer `cancelled`.
    stop: AtomicBool,
    /// The attempt has sent a heartbeat.
    beaten_once: AtomicBool,
    /// Details of this attempt were stored.
    stored: AtomicBool,
}

impl Beat {
    /// The heartbeats of an attempt starting at `started_ms` (on the
    /// runtime's clock: a heartbeat timeout counts from it); `earlier` is
    /// what the previous attempt left (`None`: not known, read from
    /// `store` when asked).
    pub(crate) fn new(
        (clock, store): (Arc<dyn Clock>, &Arc<dyn Store>),
        limit: usize,
        earlier: Option<Option<Vec<u8>>>,
        started_ms: u64,
    ) -> Arc<Beat> {
        Arc::new(Beat {
            clock,
            store: Arc::downgrade(store),
            limit,
            last_ms: AtomicU64::new(started_ms),
            news: AtomicBool::new(false),
            watcher: AtomicWaker::new(),
            unsaved: Mutex::new(None),
            latest: Mutex::new(None),
            earlier: Mutex::new(Some(match earlier {
                Some(known) => Earlier::Known(known),
                None => Earlier::Unread,
            })),
            stop: AtomicBool::new(false),
            beaten_once: AtomicBool::new(false),
            stored: AtomicBool::new(false),
        })
    }

    /// Runs `attempt` with this beat as its heartbeat target.
    pub(crate) fn scope<F: std::future::Future>(
        beat: Arc<Beat>,
        attempt: F,
    ) -> tokio::task::futures::TaskLocalFuture<Arc<Beat>, F> {
        BEAT.scope(beat, attempt)
    }

    fn earlier(&self) -> Option<Vec<u8>> {
        let mut earlier = self.earlier.lock().expect("heartbeat lock poisoned");
        let known = match earlier.take() {
            Some(Earlier::Known(known)) => known,
            Some(Earlier::Unread) => self.read_earlier(),
            None => None,
        };
        *earlier = Some(Earlier::Known(known.clone()));
        known
    }

    /// Reads the details stored for the call of the attempt running on
    /// this task (its context names it).
    fn read_earlier(&self) -> Option<Vec<u8>> {
        let ctx = crate::activity::ActivityContext::current()?;
        let at = keys::heartbeat(&ctx.workflow_id, &ctx.idempotency_key);
        self.store
            .upgrade()?
            .get(&at)
            .inspect_err(|e| {
                tracing::warn!(key = %crate::store::printable(&at), error = %e, "heartbeat details could not be read; read as none");
            })
            .ok()
            .flatten()
    }

    /// Whether the details of an earlier attempt were looked for and found.
    pub(crate) fn found_earlier(&self) -> bool {
        matches!(
            &*self.earlier.lock().expect("heartbeat lock poisoned"),
            Some(Earlier::Known(Some(_)))
        )
    }

    /// The details the next attempt should read: this attempt's latest,
    /// or what this one was given if it sent none (`Err`: not read yet).
    pub(crate) fn for_next(&self) -> Option<Option<Vec<u8>>> {
        if let Some(latest) = self.latest.lock().expect("heartbeat lock poisoned").clone() {
            return Some(Some(latest));
        }
        match &*self.earlier.lock().expect("heartbeat lock poisoned") {
            Some(Earlier::Known(known)) => Some(known.clone()),
            _ => None,
        }
    }

    /// The runtime clock's time of the last heartbeat, ms.
    pub(crate) fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::SeqCst)
    }

    /// Resolves at the next heartbeat, or at once if one came since it
    /// last resolved.
    pub(crate) fn beaten(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.news.swap(false, Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
            self.watcher.register(cx.waker());
            if self.news.swap(false, Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    /// Takes the latest heartbeat's details to store them, if any came
    /// since the last taken.
    pub(crate) fn take_unsaved(&self) -> Option<Vec<u8>> {
        let taken = self.unsaved.lock().expect("heartbeat lock poisoned").take();
        if let Some(bytes) = &taken {
            *self.latest.lock().expect("heartbeat lock poisoned") = Some(bytes.clone());
        }
        taken
    }

    /// Whether details wait to be stored.
    pub(crate) fn has_unsaved(&self) -> bool {
        self.unsaved
            .lock()
            .expect("heartbeat lock poisoned")
            .is_some()
    }

    /// Whether the attempt has sent a heartbeat.
    pub(crate) fn has_beaten(&self) -> bool {
        self.beaten_once.load(Ordering::SeqCst)
    }

    /// Notes that details of this attempt were stored.
    pub(crate) fn mark_stored(&self) {
        self.stored.store(true, Ordering::SeqCst);
    }

    /// Whether details of this attempt were stored.
    pub(crate) fn stored(&self) -> bool {
        self.stored.load(Ordering::SeqCst)
    }

    /// Asks the attempt to stop: its next heartbeat answers `cancelled`.
    pub(crate) fn ask_to_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// How long to wait at least between two stores of details, for an
    /// attempt with heartbeat timeout `timeout`.
    pub(crate) fn save_every(timeout: Option<Duration>) -> Duration {
        timeout.map_or(SAVE_EVERY, |t| (t * 4 / 5).min(SAVE_EVERY))
    }
}
