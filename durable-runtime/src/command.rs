//! Durable commands: the only things a `#[workflow]` body may `.await`.
//!
//! A command is a value that describes a step (run this activity with this
//! input, read the clock). Awaiting it inside a workflow suspends the state
//! machine; the runtime checkpoints the new state together with the command's
//! [`Request`], carries the request out, and resumes the state with the
//! command's output. New kinds of step are new `Command` impls; the workflow
//! compiler does not change.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::activity::{ActivityOptions, ActivityVTable};
use crate::codec::CodecError;
pub use crate::search::SearchValue;

/// A step a workflow can `.await`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable command, so a #[workflow] cannot `.await` it",
    label = "awaited here",
    note = "a workflow can await #[activity] calls and durable commands (`durable_runtime::now()`, `durable_runtime::random_u64()`, ...); call other async code from inside an #[activity]",
    note = "a #[helper] call is awaited on its own: `select`, `first_of` and `join_all` take commands, not helpers"
)]
pub trait Command {
    /// What the `.await` evaluates to.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The serializable description the runtime checkpoints and executes.
    fn into_request(self) -> Result<Request, CodecError>;
    /// How the runtime executes requests of this command type.
    fn executor() -> Executor;
}

mod child;
mod stored;

pub use child::{ChildError, ParentClose};

/// A checkpointed description of a command, stored with the state that awaits it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "stored::Stored<'static>")]
#[non_exhaustive]
pub enum Request {
    /// Run an activity.
    Activity {
        /// The activity's name.
        name: String,
        /// Its encoded input.
        input: Vec<u8>,
        /// Retry policy and timeout for this call.
        options: ActivityOptions,
    },
    /// Read the runtime's clock once; the value is recorded.
    Now,
    /// Draw a random `u64` once; the value is recorded.
    RandomU64,
    /// Draw a random (v4) UUID once; the value is recorded.
    Uuid,
    /// Wait until a time: `at_ms` is set (from `after_ms` and the runtime's
    /// clock) when the transition that schedules it is checkpointed.
    Timer {
        /// Relative wait, as written.
        after_ms: u64,
        /// Due time, ms since the Unix epoch.
        at_ms: Option<u64>,
    },
    /// Wait for the next signal of this name.
    Signal {
        /// The signal's name.
        name: String,
    },
    /// Wait for the first of several commands; the others are dropped.
    Select(Vec<Request>),
    /// Run all, at most `limit` at once; the output is every result in order.
    All {
        /// The commands (activities).
        requests: Vec<Request>,
        /// How many run at once.
        limit: u32,
    },
    /// Run activities one after another, last first, each to its end
    /// (saga compensation); the output is each one's error text or `None`.
    Compensate(Vec<Request>),
    /// Start a child workflow instance (or find it) and wait for its end.
    Child {
        /// The child's workflow name.
        workflow: String,
        /// Its encoded input.
        input: Vec<u8>,
        /// Its id; default `<parent id>/<step>`.
        id: Option<String>,
        /// What happens to the child when the parent ends first.
        parent_close: ParentClose,
        /// The child's execution timeout, ms (`WorkflowCall::with_timeout`).
        timeout_ms: Option<u64>,
        /// The child's run timeout, ms (`WorkflowCall::with_run_timeout`).
        run_timeout_ms: Option<u64>,
    },
    /// End this run and start a new one of the same workflow and id.
    ContinueAsNew {
        /// The workflow name (must be the running one).
        workflow: String,
        /// The new run's encoded input.
        input: Vec<u8>,
    },
    /// Set (or replace) search attributes of this instance.
    SetAttributes(Vec<(String, SearchValue)>),
    /// Read which schedule started this instance, for which nominal time
    /// ([`scheduled`](crate::schedule::scheduled)); the value is recorded.
    Scheduled,
    /// A new promise's token ([`promise`](crate::promise::promise)); the
    /// value is recorded.
    Promise,
    /// Start a child workflow instance (or find it) and go on without
    /// waiting for it: the output is its id.
    StartChild {
        /// The child's workflow name.
        workflow: String,
        /// Its encoded input.
        input: Vec<u8>,
        /// Its id; default `<parent id>/<step>`.
        id: Option<String>,
        /// What happens to the child when the parent ends first.
        parent_close: ParentClose,
        /// The child's execution timeout, ms.
        timeout_ms: Option<u64>,
        /// The child's run timeout, ms.
        run_timeout_ms: Option<u64>,
    },
    /// Reply to an accepted update
    /// ([`Update::reply`](crate::update::Update::reply)): the reply is
    /// written with the transition that resumes the workflow.
    Reply {
        /// The update's id.
        update: String,
        /// The reply as stored: its bytes, JSON and layout hash.
        reply: Vec<u8>,
    },
}

/// The command behind [`upsert_search_attributes`].
#[derive(Debug, Clone)]
pub struct UpsertSearchAttributes(Vec<(String, SearchValue)>);

impl Command for UpsertSearchAttributes {
    type Output = ();
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::SetAttributes(self.0))
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl std::future::IntoFuture for UpsertSearchAttributes {
    type Output = ();
    type IntoFuture = std::future::Ready<()>;
    /// Outside a workflow (in `run_inline`), nothing to record.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(())
    }
}

/// Sets search attributes of the running instance (a name set again is
/// replaced), checkpointed with the step: lists filter by them
/// (`ListFilter::search_attribute`, `durable list --attr name=value`).
///
/// ```
/// use durable_runtime::prelude::*;
/// use durable_runtime::{SearchValue, upsert_search_attributes};
///
/// #[workflow]
/// async fn invoice(customer: String, cents: i64) -> Result<(), WorkflowError> {
///     upsert_search_attributes([
///         ("customer", SearchValue::from(customer)),
///         ("cents", SearchValue::from(cents)),
///     ])
///     .await;
///     Ok(())
/// }
/// ```
pub fn upsert_search_attributes<K: Into<String>>(
    attributes: impl IntoIterator<Item = (K, SearchValue)>,
) -> UpsertSearchAttributes {
    UpsertSearchAttributes(attributes.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

impl Request {
    /// Sets the due time of relative timers, from the clock's `now` (ms).
    pub(crate) fn resolve_timers(&mut self, now: u64) {
        match self {
            Request::Timer {
                after_ms,
                at_ms: at @ None,
            } => *at = Some(now.saturating_add(*after_ms)),
            Request::Select(branches) => branches.iter_mut().for_each(|b| b.resolve_timers(now)),
            _ => {}
        }
    }

    /// The due-index keys of the timers in this request.
    pub(crate) fn timer_keys(&self, id: &str, out: &mut Vec<Vec<u8>>) {
        match self {
            Request::Timer {
                at_ms: Some(at), ..
            } => out.push(crate::store::keys::timer(*at, id)),
            Request::Select(branches) => branches.iter().for_each(|b| b.timer_keys(id, out)),
            _ => {}
        }
    }
}

/// How the runtime executes a command type.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Executor {
    /// Through an activity's runner.
    Activity(ActivityVTable),
    /// Each branch of a select by its own executor.
    Select(Vec<Executor>),
    /// Every element of a `join_all` by the same executor.
    Each(Box<Executor>),
    /// A signal wait: inside the runtime, with the payload's codec.
    Signal(SignalVTable),
    /// Inside the runtime (clock, randomness).
    Builtin,
}

/// A signal a workflow takes, declared once where its senders and the
/// workflow both see it: its name and its payload's type. The workflow
/// waits with [`SignalDef::receive`]; a sender passes the declaration to
/// [`Runtime::signal`](crate::Runtime::signal), and a payload of another
/// type does not compile.
///
/// ```
/// use durable_runtime::prelude::*;
/// use durable_runtime::command::SignalDef;
///
/// pub const APPROVED: SignalDef<String> = SignalDef::new("approved");
///
/// #[workflow]
/// async fn expense(amount: u64) -> Result<String, WorkflowError> {
///     let by = APPROVED.receive().await?;
///     Ok(format!("{amount} approved by {by}"))
/// }
///
/// async fn approve(runtime: &Runtime) -> Result<(), durable_runtime::SignalError> {
///     runtime.signal("expense-7", APPROVED, &"dana".to_owned()).await
///     // runtime.signal("expense-7", APPROVED, &42) does not compile
/// }
/// # let _ = approve;
/// ```
pub struct SignalDef<T> {
    name: &'static str,
    _payload: std::marker::PhantomData<fn(T)>,
}

impl<T> SignalDef<T> {
    /// The signal called `name`.
    pub const fn new(name: &'static str) -> Self {
        SignalDef {
            name,
            _payload: std::marker::PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Waits for the next signal of this declaration (`Err(Cancelled)` if
    /// the instance is cancelled meanwhile).
    pub fn receive(&self) -> SignalWait<T> {
        signal(self.name)
    }
}

impl<T> Clone for SignalDef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SignalDef<T> {}

impl<T> std::fmt::Debug for SignalDef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignalDef({})", self.name)
    }
}

/// What names a signal to send: its declaration ([`SignalDef`], whose
/// payload type the sender must match) or its name as text (any payload).
#[diagnostic::on_unimplemented(
    message = "the signal `{Self}` does not carry a `{T}`",
    label = "declared with another payload type",
    note = "a `SignalDef<P>` is sent with a `&P`: send the declared type"
)]
pub trait SignalName<T> {
    /// The signal's name.
    fn signal_name(&self) -> &str;
}

impl<T> SignalName<T> for &str {
    fn signal_name(&self) -> &str {
        self
    }
}

impl<T> SignalName<T> for SignalDef<T> {
    fn signal_name(&self) -> &str {
        self.name
    }
}

/// How a JSON payload becomes the encoded payload of one signal type: lets
/// tools without the type (the HTTP API, the web UI) signal an instance
/// that waits for it ([`Runtime::signal_json`](crate::Runtime::signal_json)).
#[derive(Clone, Copy)]
pub struct SignalVTable {
    /// The payload's Rust type, for messages.
    pub type_name: &'static str,
    pub(crate) from_json: fn(&serde_json::Value) -> Result<Vec<u8>, String>,
    /// The payload type's layout, to read a payload sent by another build.
    pub(crate) payload: crate::layout::Reader,
}

impl std::fmt::Debug for SignalVTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignalVTable({})", self.type_name)
    }
}

impl SignalVTable {
    /// The codec of payload type `T`.
    pub fn of<T: Serialize + DeserializeOwned + 'static>() -> SignalVTable {
        SignalVTable {
            type_name: std::any::type_name::<T>(),
            payload: crate::layout::Reader::of::<T>(),
            from_json: |json| {
                let value = T::deserialize(json)
                    .map_err(|e| format!("expected {}: {e}", std::any::type_name::<T>()))?;
                crate::codec::encode(&value).map_err(|e| e.to_string())
            },
        }
    }
}

/// The command behind [`now`].
#[derive(Debug, Clone, Copy)]
pub struct Now;

impl Command for Now {
    type Output = std::time::SystemTime;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Now)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

/// The command behind [`random_u64`].
#[derive(Debug, Clone, Copy)]
pub struct RandomU64;

impl Command for RandomU64 {
    type Output = u64;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::RandomU64)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl std::future::IntoFuture for Now {
    type Output = std::time::SystemTime;
    type IntoFuture = std::future::Ready<std::time::SystemTime>;
    /// Outside a workflow (in `run_inline`), simply the current time.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(std::time::SystemTime::now())
    }
}

impl std::future::IntoFuture for RandomU64 {
    type Output = u64;
    type IntoFuture = std::future::Ready<u64>;
    /// Outside a workflow (in `run_inline`), simply a random number.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(rand::random())
    }
}

/// What a workflow sees at its current await when its instance is
/// cancelled; `?` turns it into the workflow's error, a `match` can run
/// compensations first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("[DURABLE-CANCELLED] the workflow instance was cancelled")]
pub struct Cancelled;

/// The command behind [`sleep`] and [`sleep_until`].
#[derive(Debug, Clone, Copy)]
pub struct Sleep {
    after: std::time::Duration,
    at: Option<std::time::SystemTime>,
}

impl Command for Sleep {
    type Output = Result<(), Cancelled>;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Timer {
            after_ms: u64::try_from(self.after.as_millis()).unwrap_or(u64::MAX),
            at_ms: self.at.map(crate::clock::to_ms),
        })
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl std::future::IntoFuture for Sleep {
    type Output = Result<(), Cancelled>;
    type IntoFuture = crate::future::BoxFuture<Result<(), Cancelled>>;
    /// Outside a workflow (in `run_inline`), a plain tokio sleep.
    fn into_future(self) -> Self::IntoFuture {
        let wait = match self.at {
            Some(at) => at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
            None => self.after,
        };
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            Ok(())
        })
    }
}

/// A durable timer: the workflow sleeps for `duration` (days or months are
/// normal). While it sleeps the instance holds no task and no memory; a
/// timer that came due while the process was down fires on the next open.
pub fn sleep(duration: std::time::Duration) -> Sleep {
    Sleep {
        after: duration,
        at: None,
    }
}

/// A durable timer until `deadline` (see [`sleep`]).
pub fn sleep_until(deadline: std::time::SystemTime) -> Sleep {
    Sleep {
        after: std::time::Duration::ZERO,
        at: Some(deadline),
    }
}

/// The command behind [`signal`].
pub struct SignalWait<T> {
    name: String,
    _payload: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SignalWait<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignalWait({})", self.name)
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Command for SignalWait<T> {
    type Output = Result<T, Cancelled>;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Signal { name: self.name })
    }
    fn executor() -> Executor {
        Executor::Signal(SignalVTable::of::<T>())
    }
}

impl<T: Send + 'static> std::future::IntoFuture for SignalWait<T> {
    type Output = Result<T, Cancelled>;
    type IntoFuture = std::future::Ready<Result<T, Cancelled>>;
    /// Outside a workflow (in `run_inline`) nobody can send a signal: the
    /// wait ends at once as cancelled.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(Err(Cancelled))
    }
}

/// Waits for the next signal named `name`, sent with
/// [`Runtime::signal`](crate::Runtime::signal). Signals are persisted
/// before the sender gets `Ok`, buffered until the workflow waits for them,
/// and delivered in the order sent.
pub fn signal<T>(name: impl Into<String>) -> SignalWait<T> {
    SignalWait {
        name: name.into(),
        _payload: std::marker::PhantomData,
    }
}

/// Which branch of a [`select`] finished first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Either<A, B> {
    /// The first command finished first.
    Left(A),
    /// The second command finished first.
    Right(B),
}

/// The command behind [`select`].
#[derive(Debug)]
pub struct Select<A, B> {
    left: A,
    right: B,
}

impl<A: Command, B: Command> Command for Select<A, B> {
    type Output = Either<A::Output, B::Output>;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Select(vec![
            self.left.into_request()?,
            self.right.into_request()?,
        ]))
    }
    fn executor() -> Executor {
        Executor::Select(vec![A::executor(), B::executor()])
    }
}

impl<A, B> std::future::IntoFuture for Select<A, B>
where
    A: std::future::IntoFuture + Send + 'static,
    B: std::future::IntoFuture + Send + 'static,
    A::IntoFuture: Send + 'static,
    B::IntoFuture: Send + 'static,
    A::Output: Send + 'static,
    B::Output: Send + 'static,
{
    type Output = Either<A::Output, B::Output>;
    type IntoFuture = crate::future::BoxFuture<Self::Output>;
    /// Outside a workflow (in `run_inline`), a plain race of the two.
    fn into_future(self) -> Self::IntoFuture {
        use futures::FutureExt;
        let (a, b) = (
            self.left.into_future().boxed(),
            self.right.into_future().boxed(),
        );
        Box::pin(async move {
            match futures::future::select(a, b).await {
                futures::future::Either::Left((a, _)) => Either::Left(a),
                futures::future::Either::Right((b, _)) => Either::Right(b),
            }
        })
    }
}

/// Waits for whichever of two commands finishes first; the other is
/// dropped (a losing activity attempt is aborted, a losing timer removed, a
/// losing child workflow cancelled). Activities, timers, signals and child
/// workflows can be raced. A signal or a deadline, an activity or a
/// timeout:
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::prelude::*;
/// use durable_runtime::command::{Either, select};
///
/// #[workflow]
/// async fn approve(request: String) -> Result<String, WorkflowError> {
///     match select(signal::<String>("approve"), sleep(Duration::from_secs(3 * 86_400))).await {
///         Either::Left(by) => Ok(format!("{request} approved by {}", by?)),
///         Either::Right(_) => Ok(format!("{request} expired")),
///     }
/// }
/// ```
pub fn select<A: Command, B: Command>(left: A, right: B) -> Select<A, B> {
    Select { left, right }
}

/// The command behind [`uuid()`].
#[derive(Debug, Clone, Copy)]
pub struct NewUuid;

impl Command for NewUuid {
    type Output = uuid::Uuid;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Uuid)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl std::future::IntoFuture for NewUuid {
    type Output = uuid::Uuid;
    type IntoFuture = std::future::Ready<uuid::Uuid>;
    /// Outside a workflow (in `run_inline`), simply a new UUID.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(uuid::Uuid::new_v4())
    }
}

/// A new random UUID, recorded in the workflow's state: the same value if
/// the instance is resumed after a crash.
pub fn uuid() -> NewUuid {
    NewUuid
}

/// The current time, recorded in the workflow's state: `let t = now().await;`
/// gives the same value if the instance is resumed after a crash.
pub fn now() -> Now {
    Now
}

/// A random number, recorded in the workflow's state: `random_u64().await`
/// gives the same value if the instance is resumed after a crash. Build ids
/// from it rather than calling a random source directly in the workflow
/// body; for ids, [`uuid()`] does this.
pub fn random_u64() -> RandomU64 {
    RandomU64
}

/// The command behind [`join_all`].
pub struct JoinAll<C> {
    calls: Vec<C>,
    limit: u32,
}

impl<C> std::fmt::Debug for JoinAll<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JoinAll({} calls, {} at once)",
            self.calls.len(),
            self.limit
        )
    }
}

impl<C> JoinAll<C> {
    /// Runs at most `n` at once (default: all).
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = n.max(1);
        self
    }
}

impl<C: Command> Command for JoinAll<C> {
    type Output = Vec<C::Output>;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::All {
            requests: self
                .calls
                .into_iter()
                .map(Command::into_request)
                .collect::<Result<_, _>>()?,
            limit: self.limit,
        })
    }
    fn executor() -> Executor {
        Executor::Each(Box::new(C::executor()))
    }
}

impl<C> std::future::IntoFuture for JoinAll<C>
where
    C: std::future::IntoFuture + Send + 'static,
    C::IntoFuture: Send + 'static,
    C::Output: Send + 'static,
{
    type Output = Vec<C::Output>;
    type IntoFuture = crate::future::BoxFuture<Vec<C::Output>>;
    /// Outside a workflow (in `run_inline`), runs them one after another.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut out = Vec::with_capacity(self.calls.len());
            for call in self.calls {
                out.push(call.await);
            }
            out
        })
    }
}

/// Runs activities in parallel and waits for all of them: fan-out/fan-in.
/// Each result is checkpointed as it arrives, so after a crash only the
/// unfinished ones run again. Bound the parallelism with
/// [`JoinAll::limit`].
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn import(record: String) -> Result<usize, ActivityError> {
///     Ok(record.len())
/// }
///
/// #[workflow]
/// async fn batch(records: Vec<String>) -> Result<usize, WorkflowError> {
///     let calls: Vec<_> = records.into_iter().map(import).collect();
///     let results = join_all(calls).limit(10).await;
///     let mut total = 0;
///     for r in results {
///         total += r?;
///     }
///     Ok(total)
/// }
/// ```
pub fn join_all<C: Command>(calls: Vec<C>) -> JoinAll<C> {
    JoinAll {
        calls,
        limit: u32::MAX,
    }
}

/// The command behind [`first_of`].
pub struct FirstOf<C> {
    calls: Vec<C>,
}

impl<C> std::fmt::Debug for FirstOf<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FirstOf({} calls)", self.calls.len())
    }
}

impl<C: Command> Command for FirstOf<C> {
    /// The index of the call that finished first, and its output.
    type Output = (u32, C::Output);
    fn into_request(self) -> Result<Request, CodecError> {
        // a select over the calls: its output encodes exactly as (index, output)
        Ok(Request::Select(
            self.calls
                .into_iter()
                .map(Command::into_request)
                .collect::<Result<_, _>>()?,
        ))
    }
    fn executor() -> Executor {
        Executor::Each(Box::new(C::executor()))
    }
}

impl<C> std::future::IntoFuture for FirstOf<C>
where
    C: std::future::IntoFuture + Send + 'static,
    C::IntoFuture: Send + 'static,
    C::Output: Send + 'static,
{
    type Output = (u32, C::Output);
    type IntoFuture = crate::future::BoxFuture<Self::Output>;
    /// Outside a workflow (in `run_inline`), a plain race.
    fn into_future(self) -> Self::IntoFuture {
        use futures::FutureExt;
        let futures: Vec<_> = self
            .calls
            .into_iter()
            .map(|c| c.into_future().boxed())
            .collect();
        Box::pin(async move {
            let (out, index, _) = futures::future::select_all(futures).await;
            (index as u32, out)
        })
    }
}

/// Runs the calls at once and returns the first to finish, with its index;
/// the others are dropped (their attempts aborted; child workflows that
/// lost are cancelled). For hedged requests or "whichever provider answers
/// first".
pub fn first_of<C: Command>(calls: Vec<C>) -> FirstOf<C> {
    FirstOf { calls }
}

/// An activity call is a command: its request names the activity, carries
/// the encoded input and the call's options, and it runs through the
/// activity's vtable.
impl<A: crate::activity::Activity> Command for crate::activity::ActivityCall<A> {
    type Output = A::Output;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::Activity {
            name: A::NAME.to_owned(),
            input: crate::codec::encode(&self.input)?,
            options: self.options,
        })
    }
    fn executor() -> Executor {
        Executor::Activity(ActivityVTable::of::<A>())
    }
}

impl crate::layout::Tracer {
    /// Traces the result of the command `C` awaited by variant `variant`.
    pub fn result<C: Command>(&mut self, variant: &'static str) {
        self.result_of::<C::Output>(variant);
    }
}
