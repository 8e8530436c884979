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

/// A step a workflow can `.await`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable command, so a #[workflow] cannot `.await` it",
    label = "awaited here",
    note = "a workflow can await #[activity] calls and durable commands (`durable_runtime::now()`, `durable_runtime::random_u64()`, ...); call other async code from inside an #[activity]"
)]
pub trait Command {
    /// What the `.await` evaluates to.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The serializable description the runtime checkpoints and executes.
    fn into_request(self) -> Result<Request, CodecError>;
    /// How the runtime executes requests of this command type.
    fn executor() -> Executor;
}

/// A checkpointed description of a command, stored with the state that awaits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// How the runtime executes a command type.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Executor {
    /// Through an activity's runner.
    Activity(ActivityVTable),
    /// Inside the runtime (clock, randomness).
    Builtin,
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
