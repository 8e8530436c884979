//! Size limits on what the runtime stores ([`Limits`]).

/// The largest values the runtime accepts, in encoded bytes; set with
/// [`Builder::limits`](crate::Builder::limits). The defaults follow
/// Temporal's (2 MiB per payload); a value over a limit is refused where it
/// enters, with an error naming the limit and the size, and never harms
/// another instance:
///
/// | limit | default | over it |
/// |---|---|---|
/// | `id_bytes` | 1,000 ([`MAX_ID_BYTES`](crate::MAX_ID_BYTES), also the most allowed) | `start` fails: [`StartError::IdTooLong`](crate::StartError::IdTooLong) |
/// | `input_bytes` | 2 MiB | `start` fails: [`StartError::TooLarge`](crate::StartError::TooLarge) |
/// | `signal_bytes` | 2 MiB | `signal` fails: [`SignalError::TooLarge`](crate::SignalError::TooLarge) |
/// | `result_bytes` | 2 MiB | the activity fails, not retried (kind `limit`): the workflow sees the error |
/// | `state_bytes` | 8 MiB | the instance fails at that step, naming the limit |
/// | `attribute_bytes` | 1,024 (at most 1,500: it is an index key) | the instance fails at the `upsert_search_attributes` that sets it |
///
/// A child workflow's input and id, started by a workflow rather than at
/// the API, are held to `input_bytes` and `id_bytes`: the child is not
/// created, and the parent's await returns a
/// [`ChildError`](crate::command::ChildError) naming the limit.
///
/// ```
/// use durable_runtime::{Limits, Runtime};
///
/// let mut limits = Limits::default();
/// limits.input_bytes = 256 * 1024;
/// let builder = Runtime::builder().limits(limits);
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// An instance id. Values over [`MAX_ID_BYTES`](crate::MAX_ID_BYTES)
    /// count as that (the stores' keys, indexes and messages need it).
    pub id_bytes: usize,
    /// A workflow's input, encoded.
    pub input_bytes: usize,
    /// A signal's payload, encoded.
    pub signal_bytes: usize,
    /// An activity's result, encoded.
    pub result_bytes: usize,
    /// An instance's state after a step, encoded (it holds every local
    /// live across the await: the input, the results kept).
    pub state_bytes: usize,
    /// One search attribute: its name and its value as text (a number
    /// counts 8 bytes, a flag 1). Values over [`MAX_ATTRIBUTE_BYTES`]
    /// count as that: each attribute is an index key, and PostgreSQL
    /// refuses index entries over about 2.7 KB.
    pub attribute_bytes: usize,
}

/// The most [`Limits::attribute_bytes`] can allow.
pub const MAX_ATTRIBUTE_BYTES: usize = 1_500;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id_bytes: crate::MAX_ID_BYTES,
            input_bytes: 2 << 20,
            signal_bytes: 2 << 20,
            result_bytes: 2 << 20,
            state_bytes: 8 << 20,
            attribute_bytes: 1_024,
        }
    }
}

impl Limits {
    /// The id limit in force.
    pub(crate) fn id(&self) -> usize {
        self.id_bytes.min(crate::MAX_ID_BYTES)
    }

    /// The search-attribute limit in force.
    pub(crate) fn attribute(&self) -> usize {
        self.attribute_bytes.min(MAX_ATTRIBUTE_BYTES)
    }
}

/// Why a value was refused: `what` is `size` bytes, over `limit`.
pub(crate) fn over(what: &str, size: usize, limit: usize, field: &str) -> String {
    format!(
        "[DURABLE-LIMIT] the {what} is {size} bytes, over the limit of {limit} bytes (Limits::{field}); keep large data outside the workflow (a blob store, a database) and pass a reference"
    )
}
