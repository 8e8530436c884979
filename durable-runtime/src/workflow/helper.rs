//! Async helper functions: what `#[helper]` implements, and how the driver
//! of a workflow (or of another helper) awaits either a command or a helper.
//!
//! A helper compiles like a workflow, into a state enum and a byte-level
//! [`Helper::drive`], but it is never an instance of its own: awaiting one
//! nests its state in the caller's, in the variant that awaits it (as rustc
//! nests one future in another). The caller's checkpoint holds the helper's
//! state, the command the helper waits for is the caller's request, and the
//! result of that command steps the helper first; when the helper returns,
//! the caller goes on with its value. One instance, one history.
//!
//! The nested state is stored typed, not as opaque bytes: [`Nested`]
//! serializes through the helper's own state enum, so the caller's layout
//! holds the helper's variants and fields by name, and a helper whose code
//! changed while an instance waits inside it is read by name (or parked with
//! the field named), like any other stored state.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Marker, Op, Outcome, StepError};
use crate::codec::{self, CodecError};
use crate::command::{Command, Executor, Request};
use crate::layout::Tracer;

/// An async helper function compiled by `#[helper]`: implemented on a
/// unit-like struct named like the function. Generated; not implemented
/// by hand.
pub trait Helper: Send + Sync + 'static {
    /// The function's parameter (a tuple when it has several, `()` for none).
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The function's return type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The function's name.
    const NAME: &'static str;
    /// `name@hash` of its awaits (each one's variant and command, in
    /// order): the one field name its nested state is stored under, so a
    /// helper whose awaits moved has another layout, and a state stored
    /// at one of its await points is never read into another.
    const STRUCTURE: &'static str;
    /// Hash of the helper's whole shape (as `Workflow::FINGERPRINT`):
    /// written beside its nested state, so a state read by position (a
    /// layout that could not be traced) is never read by changed code.
    const FINGERPRINT: u64;

    /// Performs one operation on an encoded helper state (the operations of
    /// [`Workflow::drive`](super::Workflow::drive)).
    #[doc(hidden)]
    fn drive(op: Op<'_>) -> Result<Outcome, StepError>;

    /// Hands the helper's state enum, by type, to `visitor`.
    #[doc(hidden)]
    fn with_state<V: StateVisitor>(visitor: V) -> V::Output;

    /// Runs the body as a plain async fn (for `run_inline`).
    #[doc(hidden)]
    fn inline(input: Self::Input) -> crate::future::BoxFuture<Self::Output>;
}

/// Something done with a state enum whose type only generated code can name.
#[doc(hidden)]
pub trait StateVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the state enum's type.
    fn visit<S: Serialize + DeserializeOwned>(self) -> Self::Output;
}

/// A call of a helper function: what `price_all(items)` returns. Awaited in
/// a workflow (or a helper), it runs there, checkpointed with the caller;
/// awaited elsewhere (as in `run_inline`), it runs as a plain async fn.
#[must_use = "a helper call does nothing until it is awaited"]
pub struct HelperCall<H: Helper> {
    input: H::Input,
}

impl<H: Helper> HelperCall<H> {
    /// Wraps a helper's input. Generated code calls this.
    #[doc(hidden)]
    pub fn new(input: H::Input) -> Self {
        HelperCall { input }
    }
}

impl<H: Helper> std::fmt::Debug for HelperCall<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HelperCall({})", H::NAME)
    }
}

impl<H: Helper> std::future::IntoFuture for HelperCall<H> {
    type Output = H::Output;
    type IntoFuture = crate::future::BoxFuture<H::Output>;
    /// Outside a workflow, the helper's body as a plain async fn.
    fn into_future(self) -> Self::IntoFuture {
        H::inline(self.input)
    }
}

/// What a state variant keeps about the thing it awaits: nothing for a
/// command ([`Marker`]), the helper's own state for a helper ([`Nested`]).
#[doc(hidden)]
pub trait Pending: Serialize + DeserializeOwned + Default {
    /// What the `.await` evaluates to.
    type Output;
    /// How the awaited request is executed, when the type alone tells
    /// (every command): the state's fields are then not decoded to learn it.
    fn executor_of_type() -> Option<Executor>;
    /// How the awaited request is executed.
    fn executor(&self) -> Result<Executor, StepError>;
    /// Takes the result of the awaited request (`None`: a helper that
    /// returned without waiting, its output already here).
    fn resume(self, result: Option<&[u8]>) -> Result<Resumed<Self>, StepError>;
    /// Records the layout of the result this pending awaits.
    fn trace(tracer: &mut Tracer, variant: &'static str);
    /// Whether nothing is stored for it (a command's marker): the field is
    /// then left out of the encoding and of the layout.
    fn is_marker(&self) -> bool;
}

/// Where an await stands after a result.
#[doc(hidden)]
pub enum Resumed<P: Pending> {
    /// Done: the value the `.await` evaluates to.
    Value(P::Output),
    /// A helper waits again, for this request.
    Wait(P, Request),
}

/// Where an await stands when it is reached.
#[doc(hidden)]
pub enum Begun<P> {
    /// Waiting for this request.
    Wait(P, Request),
    /// A helper that returned without waiting: resume at once.
    Ready(P),
}

/// What a workflow (or helper) body can `.await`: a command or a helper call.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a durable command or helper, so a #[workflow] cannot `.await` it",
    label = "awaited here",
    note = "a workflow can await #[activity] calls, #[helper] calls and durable commands (`durable_runtime::now()`, `durable_runtime::random_u64()`, ...); call other async code from inside an #[activity]"
)]
#[doc(hidden)]
pub trait Awaitable {
    /// What the awaiting variant keeps.
    type Pending: Pending;
    /// Reaches the await: the request to carry out, or (a helper that did
    /// not wait) the value at once.
    fn begin(self) -> Result<Begun<Self::Pending>, StepError>;
}

impl<C: Command> Awaitable for C {
    type Pending = Marker<C>;
    fn begin(self) -> Result<Begun<Marker<C>>, StepError> {
        Ok(Begun::Wait(Marker::default(), self.into_request()?))
    }
}

impl<H: Helper> Awaitable for HelperCall<H> {
    type Pending = Nested<H>;
    fn begin(self) -> Result<Begun<Nested<H>>, StepError> {
        let input = codec::encode(&self.input)?;
        Ok(match H::drive(Op::Start(&input))? {
            Outcome::Await { state, request, .. } => Begun::Wait(Nested::waiting(state), request),
            Outcome::Done(output) => Begun::Ready(Nested {
                returned: Some(output),
                ..Nested::waiting(Vec::new())
            }),
            _ => return Err(unexpected::<H>("start")),
        })
    }
}

impl<C: Command> Pending for Marker<C> {
    type Output = C::Output;
    fn executor_of_type() -> Option<Executor> {
        Some(C::executor())
    }
    fn executor(&self) -> Result<Executor, StepError> {
        Ok(C::executor())
    }
    fn resume(self, result: Option<&[u8]>) -> Result<Resumed<Self>, StepError> {
        let bytes = result.ok_or(CodecError::Empty)?;
        Ok(Resumed::Value(codec::decode(bytes)?))
    }
    fn trace(tracer: &mut Tracer, variant: &'static str) {
        tracer.result::<C>(variant);
    }
    fn is_marker(&self) -> bool {
        true
    }
}

impl<C> Serialize for Marker<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de, C> Deserialize<'de> for Marker<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| Marker::default())
    }
}

/// The state of a helper awaited by a variant: the helper's state enum,
/// stored in the caller's state, typed (see the module docs).
#[doc(hidden)]
pub struct Nested<H: Helper> {
    /// The helper's encoded state (as its `drive` takes it).
    state: Vec<u8>,
    /// A helper that returned without waiting: its encoded output. Never
    /// stored: the driver resumes such an await before it checkpoints.
    returned: Option<Vec<u8>>,
    /// Why the state read could not be encoded again (see `Deserialize`).
    unreadable: Option<String>,
    helper: PhantomData<fn() -> H>,
}

impl<H: Helper> Nested<H> {
    fn waiting(state: Vec<u8>) -> Self {
        Nested {
            state,
            returned: None,
            unreadable: None,
            helper: PhantomData,
        }
    }

    /// A state read through the helper's enum ([`TypedSeed`]).
    fn read(state: Result<Vec<u8>, CodecError>) -> Self {
        match state {
            Ok(state) => Nested::waiting(state),
            Err(e) => Nested {
                unreadable: Some(e.to_string()),
                ..Nested::waiting(Vec::new())
            },
        }
    }

    /// The helper's encoded state, or why there is none.
    fn state(&self) -> Result<&[u8], StepError> {
        match &self.unreadable {
            None => Ok(&self.state),
            Some(why) => Err(StepError::Codec(CodecError::Decode {
                type_name: H::NAME,
                reason: why.clone(),
            })),
        }
    }
}

impl<H: Helper> Default for Nested<H> {
    /// What a variant read without its helper's state gets: an empty state,
    /// which resumes to a codec error, never to a value.
    fn default() -> Self {
        Nested::waiting(Vec::new())
    }
}

/// The helper's driver answered an operation with the wrong kind of outcome.
fn unexpected<H: Helper>(op: &'static str) -> StepError {
    StepError::WrongVariant {
        workflow: H::NAME,
        variant: "<helper>",
        op,
    }
}

impl<H: Helper> Pending for Nested<H> {
    type Output = H::Output;
    fn executor_of_type() -> Option<Executor> {
        None
    }
    fn executor(&self) -> Result<Executor, StepError> {
        match H::drive(Op::Executor {
            state: self.state()?,
        })? {
            Outcome::Executor(e) => Ok(e),
            _ => Err(unexpected::<H>("tell its executor")),
        }
    }
    fn resume(self, result: Option<&[u8]>) -> Result<Resumed<Self>, StepError> {
        if let Some(output) = &self.returned {
            return Ok(Resumed::Value(codec::decode(output)?));
        }
        let result = result.ok_or(CodecError::Empty)?;
        match H::drive(Op::Resume {
            state: self.state()?,
            result,
        })? {
            Outcome::Await { state, request, .. } => {
                Ok(Resumed::Wait(Nested::waiting(state), request))
            }
            Outcome::Done(output) => Ok(Resumed::Value(codec::decode(&output)?)),
            _ => Err(unexpected::<H>("resume")),
        }
    }
    fn trace(tracer: &mut Tracer, variant: &'static str) {
        // the helper's state is traced with the caller's (it is a field of
        // the awaiting variant); the results it awaits, by where it stands
        tracer.helper_results(variant, |inner| {
            H::drive(Op::Trace(inner))
                .map(drop)
                .map_err(|e| format!("cannot trace helper `{}`: {e}", H::NAME))
        });
    }
    fn is_marker(&self) -> bool {
        false
    }
}

/// The helper's state, serialized through its own state enum.
struct Typed<'a, H>(&'a [u8], PhantomData<fn() -> H>);

impl<H: Helper> Serialize for Typed<'_, H> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Write<'a, S> {
            state: &'a [u8],
            serializer: S,
        }
        impl<S: Serializer> StateVisitor for Write<'_, S> {
            type Output = Result<S::Ok, S::Error>;
            fn visit<T: Serialize + DeserializeOwned>(self) -> Self::Output {
                let state: T = codec::decode(self.state).map_err(serde::ser::Error::custom)?;
                state.serialize(self.serializer)
            }
        }
        H::with_state(Write {
            state: self.0,
            serializer,
        })
    }
}

/// Reads the helper's state through its own state enum, into its encoding.
struct TypedSeed<H>(PhantomData<fn() -> H>);

impl<'de, H: Helper> serde::de::DeserializeSeed<'de> for TypedSeed<H> {
    /// The encoded state, or why it does not encode again (only a value
    /// built from parts, such as a layout's probe, can be one): it errs
    /// when used.
    type Value = Result<Vec<u8>, CodecError>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct Read<'de, D>(D, PhantomData<&'de ()>);
        impl<'de, D: Deserializer<'de>> StateVisitor for Read<'de, D> {
            type Output = Result<Result<Vec<u8>, CodecError>, D::Error>;
            fn visit<T: Serialize + DeserializeOwned>(self) -> Self::Output {
                let state = T::deserialize(self.0)?;
                Ok(codec::encode(&state))
            }
        }
        H::with_state(Read(deserializer, PhantomData))
    }
}

/// The field holding the fingerprint of the helper that wrote the state.
const WRITTEN_BY: &str = "written_by";

/// A struct of two fields: [`WRITTEN_BY`], the fingerprint of the code that
/// wrote it, and the state under a field named [`Helper::STRUCTURE`], so a
/// layout names the helper and its awaits (postcard writes no names).
impl<H: Helper> Serialize for Nested<H> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if self.returned.is_some() {
            return Err(serde::ser::Error::custom(format!(
                "helper `{}` returned but its caller did not resume",
                H::NAME
            )));
        }
        let state = self.state().map_err(serde::ser::Error::custom)?;
        let mut s = serializer.serialize_struct("Helper", 2)?;
        s.serialize_field(WRITTEN_BY, &H::FINGERPRINT)?;
        s.serialize_field(H::STRUCTURE, &Typed::<H>(state, PhantomData))?;
        s.end()
    }
}

impl<'de, H: Helper> Deserialize<'de> for Nested<H> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<H>(PhantomData<fn() -> H>);
        impl<'de, H: Helper> serde::de::Visitor<'de> for Fields<H> {
            // named by the helper: a layout names a struct by its value's type
            type Value = Nested<H>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "the state of helper `{}`", H::STRUCTURE)
            }
            /// By position (postcard): only what this helper's code wrote.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let written_by: u64 = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                if written_by != H::FINGERPRINT {
                    return Err(codec::refuse(format!(
                        "the state of helper `{}` was written by other code (fingerprint {written_by:016x}, this build's {:016x}) and is not read by position",
                        H::NAME,
                        H::FINGERPRINT
                    )));
                }
                seq.next_element_seed(TypedSeed::<H>(PhantomData))?
                    .map(Nested::read)
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                // by name (a value read by its stored layout): the layouts
                // were compared already; the writer's fingerprint is not needed
                let mut state = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == WRITTEN_BY {
                        // read as what it is, so a layout traced here says so
                        map.next_value::<u64>()?;
                    } else if key == H::STRUCTURE && state.is_none() {
                        state = Some(map.next_value_seed(TypedSeed::<H>(PhantomData))?);
                    } else {
                        // the state of another shape of the helper: never read as this one
                        return Err(serde::de::Error::custom(format!(
                            "a state of helper `{key}`, not of `{}` (its awaits changed)",
                            H::STRUCTURE
                        )));
                    }
                }
                state
                    .map(Nested::read)
                    .ok_or_else(|| serde::de::Error::missing_field(H::STRUCTURE))
            }
        }
        let fields: &'static [&'static str] = const { &[WRITTEN_BY, H::STRUCTURE] };
        deserializer.deserialize_struct("Helper", fields, Fields::<H>(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper's state, as `#[helper]` would generate it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum State {
        Start { a: u32, b: u32 },
    }

    /// One helper's code, built twice: `FP` is its fingerprint.
    struct Built<const FP: u64>;

    impl<const FP: u64> Helper for Built<FP> {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "swap";
        const STRUCTURE: &'static str = "swap@0000000000000001";
        const FINGERPRINT: u64 = FP;
        fn drive(_: Op<'_>) -> Result<Outcome, StepError> {
            Err(StepError::WrongVariant {
                workflow: "swap",
                variant: "Start",
                op: "drive (not in this test)",
            })
        }
        fn with_state<V: StateVisitor>(visitor: V) -> V::Output {
            visitor.visit::<State>()
        }
        fn inline(_: ()) -> crate::future::BoxFuture<()> {
            Box::pin(async {})
        }
    }

    #[test]
    fn a_nested_state_read_by_position_is_read_only_by_the_code_that_wrote_it() {
        let state = codec::encode(&State::Start { a: 1, b: 2 }).unwrap();
        let stored = codec::encode(&Nested::<Built<7>>::waiting(state.clone())).unwrap();
        // the same code reads it back, typed
        let back: Nested<Built<7>> = codec::decode(&stored).unwrap();
        assert_eq!(back.state().unwrap(), &state[..]);
        // other code (its locals swapped, say) refuses it instead of reading
        // `a` as `b`
        let Err(err) = codec::decode::<Nested<Built<8>>>(&stored) else {
            panic!("read by other code");
        };
        assert!(err.to_string().contains("written by other code"), "{err}");
    }
}
