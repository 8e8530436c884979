//! Activities: the side-effecting steps of a workflow, retried by policy.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::codec::{self, CodecError};

pub use crate::future::BoxFuture;

/// An activity type, implemented by `#[activity]` on a struct named like the
/// function.
pub trait Activity: Send + Sync + 'static {
    /// The activity's name, stored in requests.
    const NAME: &'static str;
    /// The function's parameters (a tuple when there are several).
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The function's return type: a `Result` whose error says whether to retry.
    type Output: ActivityOutput;
    /// The named task queue that runs it (`#[activity(queue = "..")]`);
    /// `None`: the worker that owns the instance runs it.
    const QUEUE: Option<&'static str> = None;
    /// The retry policy and timeout from the attribute.
    fn options() -> ActivityOptions;
    /// Runs the body once.
    fn run(input: Self::Input) -> BoxFuture<Self::Output>;
}

/// The result type of an activity: a `Result<T, E>` whose `E` is an
/// [`ActivityFailure`].
pub trait ActivityOutput: Serialize + DeserializeOwned + Send + 'static {
    /// `None` on success, otherwise the failure as the retry logic sees it.
    fn failure(&self) -> Option<Failure>;
    /// Builds a failed output for a failure the runtime observed (a panic, a
    /// timeout) after the last attempt.
    fn from_error(error: ActivityError) -> Self;
}

impl<T, E> ActivityOutput for Result<T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: ActivityFailure,
{
    fn failure(&self) -> Option<Failure> {
        self.as_ref().err().map(|e| Failure {
            kind: e.kind().to_owned(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        })
    }
    fn from_error(error: ActivityError) -> Self {
        Err(E::from_activity_error(error))
    }
}

/// An activity's error type. [`ActivityError`] implements it; implement it for
/// your own error to return that from activities.
pub trait ActivityFailure:
    std::fmt::Display + Serialize + DeserializeOwned + Send + 'static
{
    /// Whether another attempt may succeed. Default: yes.
    fn is_retryable(&self) -> bool {
        true
    }
    /// A short kind name that retry policies can list as non-retryable.
    fn kind(&self) -> &str {
        "error"
    }
    /// Converts a failure the runtime observed (panic, timeout).
    fn from_activity_error(error: ActivityError) -> Self;
}

/// How one attempt failed, as the retry logic sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error's kind.
    pub kind: String,
    /// The error's text.
    pub message: String,
    /// Whether the error allows another attempt.
    pub retryable: bool,
}

impl Failure {
    /// The failure as history and the UI show it: `kind: message`, the kind
    /// once (an [`ActivityError`]'s own text starts with its kind already).
    pub(crate) fn text(&self) -> String {
        let prefixed = self
            .message
            .strip_prefix(self.kind.as_str())
            .is_some_and(|rest| rest.starts_with(": "));
        if prefixed {
            self.message.clone()
        } else {
            format!("{}: {}", self.kind, self.message)
        }
    }
}

/// The ready-made activity error: a message, a kind and whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ActivityError {
    kind: String,
    message: String,
    retryable: bool,
}

impl ActivityError {
    /// A failure that another attempt may not have (a network error, a busy service).
    pub fn retryable(message: impl Into<String>) -> Self {
        ActivityError {
            kind: "error".into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix (a declined card): no further attempts.
    pub fn terminal(message: impl Into<String>) -> Self {
        ActivityError {
            kind: "error".into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// What an activity the workflow was waiting for evaluates to when the
    /// instance is cancelled (kind `cancelled`, not retried).
    pub fn cancelled() -> Self {
        ActivityError::terminal("the workflow instance was cancelled").with_kind("cancelled")
    }

    /// Sets the kind, which a [`RetryPolicy`] can name as non-retryable.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ActivityFailure for ActivityError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn from_activity_error(error: ActivityError) -> Self {
        error
    }
}

/// When and how often a failed activity is tried again.
///
/// Defaults: first retry after 1 s, each wait twice the previous, at most
/// 60 s between attempts, at most 10 attempts, every error kind retryable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Wait before the second attempt.
    pub initial_interval: Duration,
    /// Factor applied to the wait after each failed attempt.
    pub backoff_coefficient: f64,
    /// Upper bound of the wait.
    pub maximum_interval: Duration,
    /// Attempts in all, the first included; 0 means no limit.
    pub maximum_attempts: u32,
    /// Error kinds that are never retried.
    pub non_retryable_kinds: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(60),
            maximum_attempts: 10,
            non_retryable_kinds: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next_attempt` (2 for the first retry).
    pub fn backoff(&self, next_attempt: u32) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let secs =
            self.initial_interval.as_secs_f64() * self.backoff_coefficient.max(1.0).powi(exponent);
        let capped = secs.min(self.maximum_interval.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.maximum_interval)
    }

    /// Whether a failure after `attempt` attempts gets another one.
    pub fn allows_retry(&self, attempt: u32, failure: &Failure) -> bool {
        failure.retryable
            && !self.non_retryable_kinds.contains(&failure.kind)
            && (self.maximum_attempts == 0 || attempt < self.maximum_attempts)
    }
}

/// Per-call settings of an activity: its retry policy and timeouts.
///
/// Every timeout runs on the runtime's clock (a `TestClock` skips it) and
/// is `None` (no limit) unless set, with `#[activity(..)]` or on the call
/// (`ActivityCall::with_timeout`, ..):
///
/// | timeout | bounds | when it passes |
/// |---|---|---|
/// | start-to-close | one attempt | the attempt fails (kind `timeout`) and is retried by the policy |
/// | heartbeat | the time between two [`heartbeat`](crate::heartbeat::heartbeat)s of an attempt (the first counted from its start) | as start-to-close |
/// | schedule-to-close | the whole call, every attempt and backoff, from the checkpoint that scheduled it | the call fails (kind `timeout`), not retried |
/// | schedule-to-start | the wait of a task-queue call for a worker to claim it | as schedule-to-close |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ActivityOptions {
    /// The retry policy.
    pub retry: RetryPolicy,
    /// Longest time one attempt may take before it counts as failed.
    pub start_to_close_timeout: Option<Duration>,
    /// Longest time an attempt may go without a heartbeat.
    // The three below are stored beside the two above, not in this
    // struct's own encoding (a build before them reads the options by
    // position): see `command/stored.rs` and the task record.
    #[serde(skip)]
    pub heartbeat_timeout: Option<Duration>,
    /// Longest time the whole call may take, retries included.
    #[serde(skip)]
    pub schedule_to_close_timeout: Option<Duration>,
    /// Longest time a task-queue call may wait for a worker to claim it
    /// (a call run in the instance's own process starts at once).
    #[serde(skip)]
    pub schedule_to_start_timeout: Option<Duration>,
}

/// The timeouts of [`ActivityOptions`] that its encoding leaves out, as
/// they are stored beside it (ms; 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct LaterTimeouts {
    heartbeat_ms: u64,
    schedule_to_close_ms: u64,
    schedule_to_start_ms: u64,
}

impl LaterTimeouts {
    /// Those of `options`.
    pub(crate) fn of(options: &ActivityOptions) -> LaterTimeouts {
        let ms = |d: Option<Duration>| d.map_or(0, |d| (d.as_millis() as u64).max(1));
        LaterTimeouts {
            heartbeat_ms: ms(options.heartbeat_timeout),
            schedule_to_close_ms: ms(options.schedule_to_close_timeout),
            schedule_to_start_ms: ms(options.schedule_to_start_timeout),
        }
    }

    /// Whether none is set (the options then encode as a build before
    /// them wrote them).
    pub(crate) fn is_none(&self) -> bool {
        *self == LaterTimeouts::default()
    }

    /// Sets them on `options`.
    pub(crate) fn apply(self, options: &mut ActivityOptions) {
        let d = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        options.heartbeat_timeout = d(self.heartbeat_ms);
        options.schedule_to_close_timeout = d(self.schedule_to_close_ms);
        options.schedule_to_start_timeout = d(self.schedule_to_start_ms);
    }
}

/// What the runtime knows about the attempt it is running, available inside
/// an activity body through [`ActivityContext::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityContext {
    /// The workflow instance id.
    pub workflow_id: String,
    /// The activity's name.
    pub activity: &'static str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across retries and restarts, and never used by another call:
    /// `<workflow id>/<incarnation>/<step>` (the incarnation, 16 hex digits,
    /// is drawn when the instance is created, so an id started again after
    /// retention does not repeat its keys; an instance created by a build
    /// before incarnations keeps `<workflow id>/<step>`). A part of a
    /// `join_all` appends `/<index>`. Pass it to external services to
    /// deduplicate calls.
    pub idempotency_key: String,
    /// The worker running the attempt, on a store shared by workers
    /// (PostgreSQL; see `Builder::worker_name`); `None` otherwise.
    pub worker: Option<String>,
}

tokio::task_local! {
    static CONTEXT: ActivityContext;
    static DEPENDENCIES: Arc<Dependencies>;
}

/// The values activities need — a database pool, an HTTP client, a mailer
/// — registered with [`Builder::dependency`](crate::Builder::dependency),
/// one per type, and read inside an activity with [`dependency`].
#[derive(Default, Clone)]
pub(crate) struct Dependencies(
    std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>,
);

impl Dependencies {
    /// Registers `value` as the dependency of type `T` (replacing one).
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(std::any::TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
    }
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dependencies({} registered)", self.0.len())
    }
}

/// The dependency of type `T` that the runtime running this activity was
/// given with [`Builder::dependency`](crate::Builder::dependency): how an
/// activity reaches a database pool, an HTTP client or a mailer. Set before
/// the runtime opens, it is there for the activities that recovery resumes
/// during `open()` too; a test gives its runtime fakes.
///
/// ```
/// use std::sync::Arc;
/// use durable_runtime::prelude::*;
///
/// /// What sends mail: the real one in the service, a fake in tests.
/// trait Mailer: Send + Sync {
///     fn send(&self, to: &str, body: &str) -> Result<(), String>;
/// }
///
/// #[activity]
/// async fn welcome(email: String) -> Result<(), ActivityError> {
///     let mailer = dependency::<Arc<dyn Mailer>>()?;
///     mailer
///         .send(&email, "welcome!")
///         .map_err(ActivityError::retryable)
/// }
///
/// struct Fake;
/// impl Mailer for Fake {
///     fn send(&self, _: &str, _: &str) -> Result<(), String> {
///         Ok(())
///     }
/// }
///
/// let builder = Runtime::builder().dependency::<Arc<dyn Mailer>>(Arc::new(Fake));
/// # drop(builder);
/// ```
///
/// # Errors
/// A terminal [`ActivityError`] of kind `dependency` naming `T` when the
/// runtime was given none of that type, or when called outside an activity.
pub fn dependency<T: Send + Sync + 'static>() -> Result<Arc<T>, ActivityError> {
    let missing = |why: &str| {
        ActivityError::terminal(format!(
            "no dependency of type `{}` {why}: register it with `Builder::dependency`",
            std::any::type_name::<T>()
        ))
        .with_kind("dependency")
    };
    DEPENDENCIES
        .try_with(|deps| deps.get::<T>())
        .map_err(|_| missing("here (not inside an activity)"))?
        .ok_or_else(|| missing("was registered"))
}

impl ActivityContext {
    /// The context of the activity attempt running on this task, if any.
    pub fn current() -> Option<ActivityContext> {
        CONTEXT.try_with(Clone::clone).ok()
    }
}

/// One attempt's outcome: the encoded output and, if it failed, how.
pub(crate) type Attempt = Result<(Vec<u8>, Option<Failure>), CodecError>;

/// Decodes the input and starts one attempt.
/// Runs one attempt of an activity on its encoded input; a result over
/// `result_limit` bytes is a failure of kind `limit`, not retried.
pub(crate) type RunFn =
    fn(&[u8], ActivityContext, Arc<Dependencies>, usize) -> Result<BoxFuture<Attempt>, CodecError>;

/// Starts one attempt of activity `A` run by `body` (its own body, or a
/// test's mock): the input decoded, the attempt's context and the
/// dependencies in scope, the output encoded, a result over `result_limit`
/// bytes turned into a failure of kind `limit`.
fn start<A: Activity>(
    input: &[u8],
    ctx: ActivityContext,
    dependencies: Arc<Dependencies>,
    result_limit: usize,
    body: impl FnOnce(A::Input) -> BoxFuture<A::Output>,
) -> Result<BoxFuture<Attempt>, CodecError> {
    let input: A::Input = codec::decode(input)?;
    // one span per attempt, with the ids a log search needs
    let span = tracing::info_span!(
        "activity",
        name = A::NAME,
        attempt = ctx.attempt,
        key = %ctx.idempotency_key,
        instance = %ctx.workflow_id
    );
    let fut = tracing::Instrument::instrument(
        CONTEXT.scope(ctx, DEPENDENCIES.scope(dependencies, body(input))),
        span,
    );
    Ok(Box::pin(fut.map(move |out| {
        let failure = out.failure();
        let bytes = codec::encode(&out)?;
        if failure.is_none() && bytes.len() > result_limit {
            let why = crate::limits::over(
                "activity's result",
                bytes.len(),
                result_limit,
                "result_bytes",
            );
            let error = ActivityError::terminal(why).with_kind("limit");
            let failed = A::Output::from_error(error);
            let failure = failed.failure();
            return codec::encode(&failed).map(|bytes| (bytes, failure));
        }
        Ok((bytes, failure))
    })))
}

/// An activity a test replaced (`Builder::mock_activity`): runs like the
/// activity's own runner, with the mock as its body.
pub(crate) type Mock = Arc<
    dyn Fn(
            &[u8],
            ActivityContext,
            Arc<Dependencies>,
            usize,
        ) -> Result<BoxFuture<Attempt>, CodecError>
        + Send
        + Sync,
>;

/// A mock of activity `A`: `body` takes the activity's input and returns
/// its output.
#[cfg(feature = "testing")]
pub(crate) fn mock<A: Activity>(
    body: impl Fn(A::Input) -> A::Output + Send + Sync + 'static,
) -> Mock {
    let body = Arc::new(body);
    Arc::new(move |input, ctx, dependencies, result_limit| {
        let body = body.clone();
        // run when polled, inside the attempt's context
        start::<A>(input, ctx, dependencies, result_limit, move |input| {
            Box::pin(async move { body(input) })
        })
    })
}

/// What a test changes: mocks by activity name, a witness told of every
/// attempt before it runs (the crash sweep's record of what ran), and a
/// pause as a task decides to wait.
#[derive(Clone, Default)]
pub(crate) struct TestHooks {
    pub(crate) mocks: std::collections::HashMap<&'static str, Mock>,
    pub(crate) witness: Option<Witness>,
    /// Called as an instance's task decides to wait, before it gives up
    /// its claim (a test widens that window to race a wake-up with it).
    pub(crate) deciding_to_wait: Option<IdHook>,
    /// Called as an instance's task has ended it, before it gives up its
    /// claim (a test races a reset with it).
    pub(crate) ending: Option<IdHook>,
    /// Called as a loaded instance has been checked against the code and
    /// is about to be saved unparked, migrated or parked (a test races a
    /// reset with that save).
    pub(crate) settling: Option<IdHook>,
}

/// Called with an instance id.
pub(crate) type IdHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Told of each activity attempt before it runs.
pub(crate) type Witness = Arc<dyn Fn(&ActivityContext) + Send + Sync>;

/// The type-erased runner of one activity type.
#[derive(Clone, Copy)]
pub struct ActivityVTable {
    /// The activity's name.
    pub name: &'static str,
    /// The named task queue that runs it, if any.
    pub(crate) queue: Option<&'static str>,
    pub(crate) run: RunFn,
    pub(crate) fail: fn(ActivityError) -> Result<Vec<u8>, CodecError>,
    /// The input type's layout, to read an input queued by another build.
    pub(crate) input: crate::layout::Reader,
    /// The output type's layout, to read a result of another build's worker.
    pub(crate) output: crate::layout::Reader,
}

impl std::fmt::Debug for ActivityVTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActivityVTable({})", self.name)
    }
}

/// An activity linked into the program, found by name (saga compensations
/// are stored by name). `#[activity]` registers every activity.
#[doc(hidden)]
pub struct Registration {
    /// The activity's name.
    pub name: &'static str,
    /// The module that defines it (`module_path!()`), to tell apart two
    /// activities of one name.
    pub module: &'static str,
    /// Its runner.
    pub vtable: fn() -> ActivityVTable,
}

inventory::collect!(Registration);

/// The runner of the activity linked as `name`, found by name (a saga's
/// compensation, a queued call). Two activities linked under one name (two
/// crates that both define `refund`) are an error naming both modules,
/// never one run for the other; a runtime told which one it runs
/// ([`Builder::activity`](crate::Builder::activity)) looks there first
/// ([`Activities::named`]).
pub(crate) fn registered(name: &str) -> Result<ActivityVTable, String> {
    let mut found = inventory::iter::<Registration>
        .into_iter()
        .filter(|r| r.name == name);
    match (found.next(), found.next()) {
        (Some(r), None) => Ok((r.vtable)()),
        (None, _) => Err(format!("activity `{name}` is not linked into this program")),
        (Some(a), Some(b)) => Err(format!(
            "two activities are named `{name}` (in `{}` and in `{}`), so a call by name cannot tell which to run: give one `#[activity(name = \"...\")]`, or name the one this runtime runs with `Builder::activity`",
            a.module, b.module
        )),
    }
}

/// The activities a runtime was told it runs for calls made by name
/// ([`Builder::activity`](crate::Builder::activity)), looked at before
/// the ones linked into the program.
#[derive(Clone, Default)]
pub(crate) struct Activities(HashMap<&'static str, fn() -> ActivityVTable>);

impl Activities {
    /// Names `A` as the activity run for calls by its name.
    pub(crate) fn insert<A: Activity>(&mut self) {
        self.0.insert(A::NAME, ActivityVTable::of::<A>);
    }

    /// The runner for a call by `name`: the one this runtime was told it
    /// runs, or the one linked under that name ([`registered`]).
    pub(crate) fn named(&self, name: &str) -> Result<ActivityVTable, String> {
        match self.0.get(name) {
            Some(vtable) => Ok(vtable()),
            None => registered(name),
        }
    }
}

impl ActivityVTable {
    /// The runner of activity `A`.
    #[doc(hidden)]
    pub fn of<A: Activity>() -> Self {
        ActivityVTable {
            name: A::NAME,
            queue: A::QUEUE,
            run: |input, ctx, dependencies, result_limit| {
                start::<A>(input, ctx, dependencies, result_limit, A::run)
            },
            fail: |error| codec::encode(&A::Output::from_error(error)),
            input: crate::layout::Reader::of::<A::Input>(),
            output: crate::layout::Reader::of::<A::Output>(),
        }
    }
}

/// A call of an activity function: `charge(id, card)` returns one. Awaited
/// in a workflow it is a checkpointed step; awaited anywhere else it simply
/// runs the body once (handy in unit tests).
pub struct ActivityCall<A: Activity> {
    pub(crate) input: A::Input,
    pub(crate) options: ActivityOptions,
}

impl<A: Activity> ActivityCall<A> {
    /// Wraps an activity's input. Generated code calls this.
    #[doc(hidden)]
    pub fn new(input: A::Input) -> Self {
        ActivityCall {
            input,
            options: A::options(),
        }
    }

    /// Overrides the retry policy for this call.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.options.retry = retry;
        self
    }

    /// Overrides the attempt (start-to-close) timeout for this call.
    pub fn with_timeout(mut self, start_to_close: Duration) -> Self {
        self.options.start_to_close_timeout = Some(start_to_close);
        self
    }

    /// Sets the heartbeat timeout for this call: an attempt that goes this
    /// long without a [`heartbeat`](crate::heartbeat::heartbeat) fails
    /// (kind `timeout`) and is retried by the policy.
    pub fn with_heartbeat_timeout(mut self, heartbeat: Duration) -> Self {
        self.options.heartbeat_timeout = Some(heartbeat);
        self
    }

    /// Sets the schedule-to-close timeout for this call: the whole call,
    /// every attempt and backoff, fails (kind `timeout`, not retried) once
    /// this long has passed since the checkpoint that scheduled it.
    pub fn with_schedule_to_close_timeout(mut self, schedule_to_close: Duration) -> Self {
        self.options.schedule_to_close_timeout = Some(schedule_to_close);
        self
    }

    /// Sets the schedule-to-start timeout for this call: a call of a task
    /// queue that no worker has claimed this long after it was queued
    /// fails (kind `timeout`, not retried).
    pub fn with_schedule_to_start_timeout(mut self, schedule_to_start: Duration) -> Self {
        self.options.schedule_to_start_timeout = Some(schedule_to_start);
        self
    }
}

impl<A: Activity> std::fmt::Debug for ActivityCall<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActivityCall({})", A::NAME)
    }
}

impl<A: Activity> IntoFuture for ActivityCall<A> {
    type Output = A::Output;
    type IntoFuture = BoxFuture<A::Output>;
    fn into_future(self) -> Self::IntoFuture {
        A::run(self.input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never run: a name two activities share finds neither.
    fn never() -> ActivityVTable {
        unreachable!("an ambiguous name is never run")
    }

    inventory::submit! {
        Registration { name: "refund_twice", module: "shipping", vtable: never }
    }
    inventory::submit! {
        Registration { name: "refund_twice", module: "billing", vtable: never }
    }

    /// Before, the lookup took whichever was linked first, so a saga's
    /// compensation or a queued call could run the other crate's `refund`.
    #[test]
    fn a_name_two_activities_share_is_an_error_naming_both_never_one_of_them() {
        let err = registered("refund_twice").unwrap_err();
        assert!(
            err.contains("`shipping`") && err.contains("`billing`"),
            "{err}"
        );
        assert!(err.contains("#[activity(name = "), "{err}");
        let err = registered("linked_nowhere").unwrap_err();
        assert!(err.contains("not linked"), "{err}");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            initial_interval: Duration::from_millis(100),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_millis(500),
            maximum_attempts: 4,
            non_retryable_kinds: vec!["declined".into()],
        };
        assert_eq!(p.backoff(2), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(400));
        assert_eq!(p.backoff(5), Duration::from_millis(500));
        assert_eq!(p.backoff(1000), Duration::from_millis(500));
        let f = |kind: &str, retryable| Failure {
            kind: kind.into(),
            message: String::new(),
            retryable,
        };
        assert!(p.allows_retry(1, &f("error", true)));
        assert!(!p.allows_retry(4, &f("error", true)));
        assert!(!p.allows_retry(1, &f("declined", true)));
        assert!(!p.allows_retry(1, &f("error", false)));
    }

    /// An `ActivityError`'s text starts with its kind; the history showed
    /// "error: error: card declined" (the kind prefixed again).
    #[test]
    fn a_failure_names_its_kind_once() {
        let declined: Result<(), ActivityError> =
            Err(ActivityError::retryable("card declined").with_kind("payment"));
        assert_eq!(declined.failure().unwrap().text(), "payment: card declined");
        let plain: Result<(), ActivityError> = Err(ActivityError::retryable("card declined"));
        assert_eq!(plain.failure().unwrap().text(), "error: card declined");
        // an error type of the user's whose text does not name its kind
        let custom = Failure {
            kind: "io".into(),
            message: "disk full".into(),
            retryable: true,
        };
        assert_eq!(custom.text(), "io: disk full");
        // a text that merely starts with the kind's letters is not its kind
        let iota = Failure {
            kind: "io".into(),
            message: "iota overflow".into(),
            retryable: true,
        };
        assert_eq!(iota.text(), "io: iota overflow");
    }
}
