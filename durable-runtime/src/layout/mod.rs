//! Layouts: the serialized shape of every value a workflow version stores,
//! read off its compiled types.
//!
//! postcard, the encoding of states, inputs and outputs, is positional: a
//! struct is its fields in order, an enum variant its index. Bytes written by
//! one build therefore decode as *something* under another build whose types
//! were edited (reordered fields swap values, a reordered enum picks another
//! variant). To never misread them, each registered workflow version knows
//! the layout of what it stores — traced from the `Deserialize` impls of the
//! monomorphized state enum (every inferred local included), the input, the
//! output and each awaited command's result — and each instance record names
//! the layout (by hash) of the code that wrote it. Layouts are stored once in
//! the store, so a state can be read by name without the code that wrote it:
//! when the stored layout differs from the code's, [`diff`] says which edits
//! separate them, and a compatible state is [`value::read`] by the old layout
//! and rebuilt by field and variant *name* under the new one; anything else
//! is parked with the edit named.
//!
//! Tracing walks the `Deserialize` impls with a probing deserializer
//! (`layout/trace.rs`), the approach of serde-reflection (which Diem/Aptos use to
//! pin their wire formats); that crate was tried first and set aside
//! because it cannot reach an enum nested inside one variant of another
//! without being handed the nested type, which the runtime never has.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod diff;
mod fit;
mod names;
mod parts;
mod sample;
pub(crate) mod spans;
mod trace;
pub mod value;

pub use fit::fits;
pub(crate) use parts::{awaits_helper, part_shape, parts_across, parts_changed};

pub(crate) use sample::of_value;
use trace::trace;

/// The serialized shape of one value: a primitive, a combination, or a
/// named struct or enum described in [`WorkflowLayout::types`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Shape {
    /// `()`.
    Unit,
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64` (and `isize`).
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64` (and `usize`).
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    Str,
    /// A byte string (`serde_bytes`, or a type that serializes as bytes).
    Bytes,
    /// `Option<T>`.
    Option(Box<Shape>),
    /// A sequence: `Vec<T>`, `HashSet<T>`, `VecDeque<T>`...
    Seq(Box<Shape>),
    /// A map: `HashMap<K, V>`, `BTreeMap<K, V>`.
    Map(Box<Shape>, Box<Shape>),
    /// A tuple.
    Tuple(Vec<Shape>),
    /// A fixed-size array `[T; N]`.
    Array(Box<Shape>, u64),
    /// A struct or enum, by its Rust type name (without module paths).
    Named(String),
    /// Not known: the element of an empty sequence or of a `None` in a
    /// value's layout (nothing of it is stored).
    Unknown,
}

/// The fields of a struct or of an enum variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Fields {
    /// No fields: `struct A;`, `A` in `enum E { A }`.
    Unit,
    /// One unnamed field: `struct A(T);`.
    Newtype(Shape),
    /// Unnamed fields: `struct A(T, U);`.
    Tuple(Vec<Shape>),
    /// Named fields, in declaration (= encoding) order.
    Struct(Vec<Field>),
}

/// A named field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// The other names a stored value may give it (`#[serde(alias)]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Whether a value that lacks it still reads (`#[serde(default)]`, an
    /// `Option`). Known for the fields of structs; `false` (not known) for
    /// enum variants' fields and for values seen from their sender's side.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl Field {
    /// A field that has no aliases and must be present.
    pub fn new(name: impl Into<String>, shape: Shape) -> Field {
        Field {
            name: name.into(),
            shape,
            aliases: Vec::new(),
            optional: false,
        }
    }

    /// Whether a stored field named `name` is this one.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

/// A named type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Container {
    /// A struct.
    Struct(Fields),
    /// An enum: its variants in index order.
    Enum(Vec<(String, Fields)>),
}

/// Everything one workflow version stores, as laid out on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowLayout {
    /// The workflow's name.
    pub workflow: String,
    /// Its version.
    pub version: u32,
    /// The state enum (one variant per await).
    pub state: Shape,
    /// The input.
    pub input: Shape,
    /// The output.
    pub output: Shape,
    /// The result type of the command each variant awaits, by variant name.
    pub results: Vec<(String, Shape)>,
    /// Every named type reachable from the shapes above.
    pub types: BTreeMap<String, Container>,
}

impl WorkflowLayout {
    /// The layout's identity: a hash of its stored encoding, never 0 (0
    /// stands for "unknown": records written before layouts were stored).
    pub fn hash(&self) -> u64 {
        fnv(&encode(self))
    }

    /// The fields of variant `variant` of the state enum.
    pub fn state_variant(&self, variant: &str) -> Option<&Fields> {
        let Shape::Named(name) = &self.state else {
            return None;
        };
        match self.types.get(name)? {
            Container::Enum(variants) => {
                variants.iter().find(|(n, _)| n == variant).map(|(_, f)| f)
            }
            Container::Struct(_) => None,
        }
    }
}

/// The layout of one value apart from a workflow: a signal's payload as its
/// sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ValueLayout {
    /// The value's shape.
    pub shape: Shape,
    /// Every named type reachable from it.
    pub types: BTreeMap<String, Container>,
}

impl ValueLayout {
    /// The layout's identity (as [`WorkflowLayout::hash`]).
    pub fn hash(&self) -> u64 {
        fnv(&encode(self))
    }
}

/// Reads a state stored under layout `old` (its variant `variant`) for
/// code laid out as `new`: the edits it crosses and the state read by
/// name, or — when an edit cannot be crossed or the bytes do not read by
/// their own layout — why not, in the user's terms. What the runtime does
/// before rebuilding a state with the code, and `durable check` before
/// asking whether it would rebuild ([`fits`]).
pub(crate) fn read_across(
    state: &[u8],
    old: &WorkflowLayout,
    new: &WorkflowLayout,
    variant: &str,
) -> Result<(Vec<diff::Edit>, value::Value), Vec<String>> {
    let edits = diff::state_variant(old, new, variant);
    if !diff::compatible(&edits) {
        return Err(edits
            .iter()
            .filter(|e| !e.compatible)
            .map(ToString::to_string)
            .collect());
    }
    let value = value::read(state, &old.state, &old.types)
        .map_err(|e| vec![format!("the state does not read by its own layout: {e}")])?;
    Ok((edits, value))
}

/// A layout as it is stored: JSON, which names every field, so that the
/// layout format itself can gain fields without a stored layout ever being
/// read by position.
pub(crate) fn encode<T: Serialize>(layout: &T) -> Vec<u8> {
    serde_json::to_vec(layout).expect("a layout always serializes")
}

/// A stored layout ([`encode`]).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not a layout: {e}"))
}

fn fnv(bytes: &[u8]) -> u64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// The traced layout of a value type, or why it could not be traced.
#[derive(Debug)]
pub(crate) struct ValueTraced {
    /// [`ValueLayout::hash`], or 0 when not traced.
    pub(crate) hash: u64,
    pub(crate) layout: Result<ValueLayout, String>,
}

/// What a value of one type, written by another build, is read with: the
/// type's layout and its rebuilding from a value read by name (a signal's
/// payload, a queued activity's input and result).
#[derive(Clone, Copy)]
pub(crate) struct Reader {
    /// The type's Rust name, for messages.
    pub(crate) type_name: &'static str,
    /// Its layout, traced once per process.
    pub(crate) layout: fn() -> &'static ValueTraced,
    /// Encodes a value read by another layout as this type, by name.
    pub(crate) rebuild: fn(&value::Value) -> Result<Vec<u8>, crate::CodecError>,
}

impl Reader {
    /// The reader of `T`.
    pub(crate) fn of<T: Serialize + DeserializeOwned + 'static>() -> Reader {
        Reader {
            type_name: std::any::type_name::<T>(),
            layout: value_of::<T>,
            rebuild: |value| {
                let rebuilt: T = value::rebuild(value)?;
                crate::codec::encode(&rebuilt)
            },
        }
    }
}

/// The layout of `T`, traced once per process.
pub(crate) fn value_of<T: DeserializeOwned + 'static>() -> &'static ValueTraced {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static ValueTraced>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(found) = cache
        .lock()
        .expect("layout cache poisoned")
        .get(&TypeId::of::<T>())
    {
        return found;
    }
    let layout = trace::<T>().map(|(shape, types)| ValueLayout { shape, types });
    let traced: &'static ValueTraced = Box::leak(Box::new(ValueTraced {
        hash: layout.as_ref().map_or(0, ValueLayout::hash),
        layout,
    }));
    cache
        .lock()
        .expect("layout cache poisoned")
        .entry(TypeId::of::<T>())
        .or_insert(traced)
}

/// The traced layout of a registered workflow version, or why it could not
/// be traced (a type with a hand-written `Deserialize` the tracer cannot
/// walk); such a version is checked by its fingerprint only, and says so at
/// registration.
#[derive(Debug)]
pub(crate) struct Traced {
    /// [`WorkflowLayout::hash`], or 0 when not traced.
    pub(crate) hash: u64,
    pub(crate) layout: Result<WorkflowLayout, String>,
}

/// The layout of the workflow whose type is `id` (named `name`, version
/// `version`, storing `I` as its input and `O` as its output), traced once
/// per process: `drive` hands the tracer to the generated code, which
/// traces the state enum and each awaited command's result.
pub(crate) fn traced<I: DeserializeOwned, O: DeserializeOwned>(
    id: TypeId,
    (name, version): (&str, u32),
    drive: impl FnOnce(&mut Tracer) -> Result<(), String>,
) -> &'static Traced {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static Traced>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().expect("layout cache poisoned").get(&id) {
        return found;
    }
    let layout = trace_workflow::<I, O>(name, version, drive);
    let traced: &'static Traced = Box::leak(Box::new(Traced {
        hash: layout.as_ref().map_or(0, WorkflowLayout::hash),
        layout,
    }));
    cache
        .lock()
        .expect("layout cache poisoned")
        .entry(id)
        .or_insert(traced)
}

fn trace_workflow<I: DeserializeOwned, O: DeserializeOwned>(
    name: &str,
    version: u32,
    drive: impl FnOnce(&mut Tracer) -> Result<(), String>,
) -> Result<WorkflowLayout, String> {
    let mut tracer = Tracer::default();
    drive(&mut tracer)?;
    let input = tracer.root::<I>("the input");
    let output = tracer.root::<O>("the output");
    if let Some(first) = tracer.errors.first() {
        return Err(first.clone());
    }
    let state = tracer.state.take().ok_or("the state enum was not traced")?;
    Ok(WorkflowLayout {
        workflow: name.to_owned(),
        version,
        state,
        input,
        output,
        results: tracer.results,
        types: tracer.types,
    })
}

/// Collects the layouts of the types a workflow stores; handed by the
/// runtime to the generated code, which names the state enum and the
/// awaited commands (types only it can name).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Tracer {
    state: Option<Shape>,
    results: Vec<(String, Shape)>,
    types: BTreeMap<String, Container>,
    errors: Vec<String>,
}

impl Tracer {
    /// Traces the state enum.
    pub fn state<S: DeserializeOwned>(&mut self) {
        self.state = Some(self.root::<S>("the state enum"));
    }

    /// Traces `T`, the result awaited by variant `variant` (see
    /// `Tracer::result`, by the awaited command's type).
    pub(crate) fn result_of<T: DeserializeOwned>(&mut self, variant: &'static str) {
        let what = format!("the result awaited by `{variant}`");
        let shape = self.root::<T>(&what);
        self.results.push((variant.to_owned(), shape));
    }

    /// Records the results a helper awaited at `variant` waits for, as
    /// `variant/<the helper's variant>`: `trace` traces the helper into the
    /// tracer it is given. So an edit of a result type awaited inside a
    /// helper changes the caller's layout too.
    pub(crate) fn helper_results(
        &mut self,
        variant: &'static str,
        trace: impl FnOnce(&mut Tracer) -> Result<(), String>,
    ) {
        let mut inner = Tracer::default();
        if let Err(why) = trace(&mut inner) {
            self.errors.push(why);
            return;
        }
        self.errors.extend(inner.errors);
        if let Err(why) = self.merge(inner.types) {
            self.errors.push(format!(
                "cannot trace the results awaited inside the helper at `{variant}`: {why}"
            ));
        }
        for (at, shape) in inner.results {
            self.results.push((format!("{variant}/{at}"), shape));
        }
    }

    /// Adds `types` to the named types known, refusing two of one name.
    fn merge(&mut self, types: BTreeMap<String, Container>) -> Result<(), String> {
        for (name, container) in types {
            match self.types.get(&name) {
                Some(known) if *known != container => {
                    return Err(format!(
                        "two types named `{name}` have different layouts; the layout is ambiguous"
                    ));
                }
                Some(_) => {}
                None => {
                    self.types.insert(name, container);
                }
            }
        }
        Ok(())
    }

    fn root<T: DeserializeOwned>(&mut self, what: &str) -> Shape {
        match trace::<T>().and_then(|(shape, types)| {
            self.merge(types)?;
            Ok(shape)
        }) {
            Ok(shape) => shape,
            Err(reason) => {
                self.errors.push(format!(
                    "cannot trace the layout of {what} (`{}`): {reason}",
                    std::any::type_name::<T>()
                ));
                Shape::Unit
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: String,
        qty: u32,
        lines: Vec<Line>,
        kind: Kind,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Line(u64, Option<String>);
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(Box<Kind>),
        C { inner: Inner },
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Inner {
        X,
        Y(u8),
    }

    #[test]
    fn traces_nested_and_recursive_enums_to_the_last_variant() {
        let (root, types) = trace::<Order>().unwrap();
        assert_eq!(root, Shape::Named("Order".into()), "{types:#?}");
        assert_eq!(
            types["Order"],
            Container::Struct(Fields::Struct(vec![
                Field::new("id", Shape::Str),
                Field::new("qty", Shape::U32),
                Field::new("lines", Shape::Seq(Box::new(Shape::Named("Line".into())))),
                Field::new("kind", Shape::Named("Kind".into())),
            ]))
        );
        assert_eq!(
            types["Inner"],
            Container::Enum(vec![
                ("X".into(), Fields::Unit),
                ("Y".into(), Fields::Newtype(Shape::U8)),
            ])
        );
        let Container::Enum(kinds) = &types["Kind"] else {
            panic!("Kind is an enum")
        };
        let names: Vec<_> = kinds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
    }

    #[test]
    fn a_type_the_tracer_cannot_walk_is_reported_by_name() {
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if s == "ok" {
                    Ok(Picky)
                } else {
                    Err(serde::de::Error::custom("must be `ok`"))
                }
            }
        }
        let mut tracer = Tracer::default();
        tracer.root::<Picky>("the input");
        assert!(
            tracer.errors[0].contains("the input"),
            "{}",
            tracer.errors[0]
        );
        assert!(
            tracer.errors[0].contains("must be `ok`"),
            "{}",
            tracer.errors[0]
        );
    }
}

#[cfg(test)]
mod alias_tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Aliased {
        #[serde(alias = "zz_id", alias = "a_id")]
        id: String,
        #[serde(alias = "amount")]
        cents: u32,
        qty: u8,
    }

    #[test]
    fn fields_with_aliases_are_named_by_their_own_names_and_keep_their_aliases() {
        let (_, types) = trace::<Aliased>().unwrap();
        let field = |name: &str, shape, aliases: &[&str]| Field {
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            ..Field::new(name, shape)
        };
        assert_eq!(
            types["Aliased"],
            Container::Struct(Fields::Struct(vec![
                field("id", Shape::Str, &["a_id", "zz_id"]),
                field("cents", Shape::U32, &["amount"]),
                field("qty", Shape::U8, &[]),
            ]))
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Defaults {
        id: String,
        #[serde(default)]
        note: String,
        tip: Option<u32>,
        inner: Inner2,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(default)]
    struct Inner2 {
        a: u8,
        b: Vec<u8>,
    }
    impl Default for Inner2 {
        fn default() -> Self {
            Inner2 { a: 1, b: vec![] }
        }
    }

    #[test]
    fn types_that_parse_their_strings_or_bytes_are_traced() {
        let (shape, _) = trace::<uuid::Uuid>().unwrap();
        assert_eq!(shape, Shape::Bytes);
        let (shape, _) = trace::<chrono::DateTime<chrono::Utc>>().unwrap();
        assert_eq!(shape, Shape::Str);
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Stamped {
            id: uuid::Uuid,
            at: chrono::DateTime<chrono::Utc>,
            day: chrono::NaiveDate,
        }
        let (_, types) = trace::<Stamped>().unwrap();
        assert!(matches!(&types["Stamped"], Container::Struct(Fields::Struct(f)) if f.len() == 3));
    }

    #[test]
    fn fields_a_value_may_lack_are_known() {
        let (_, types) = trace::<Defaults>().unwrap();
        let optional = |ty: &str| match &types[ty] {
            Container::Struct(Fields::Struct(fields)) => fields
                .iter()
                .map(|f| (f.name.clone(), f.optional))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let own = |pairs: &[(&str, bool)]| {
            pairs
                .iter()
                .map(|(n, o)| ((*n).to_owned(), *o))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            optional("Defaults"),
            own(&[
                ("id", false),
                ("note", true),
                ("tip", true),
                ("inner", false)
            ])
        );
        assert_eq!(optional("Inner2"), own(&[("a", true), ("b", true)]));
    }

    /// A state enum's waiting variants are struct variants: their fields
    /// are learned like a struct's (defaults and aliases), or a field added
    /// with a default would park every stored instance.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Waiting {
        Start,
        Charged {
            order: String,
            #[serde(default)]
            note: String,
            #[serde(alias = "amount", alias = "sum")]
            cents: u64,
            tip: Option<u32>,
        },
        Shipped {
            #[serde(alias = "parcel")]
            tracking: Vec<Waiting>,
        },
    }

    #[test]
    fn struct_variant_fields_carry_their_defaults_and_aliases() {
        let (_, types) = trace::<Waiting>().unwrap();
        let Container::Enum(variants) = &types["Waiting"] else {
            panic!("{:?}", types["Waiting"]);
        };
        let fields = |v: usize| match &variants[v].1 {
            Fields::Struct(fields) => fields
                .iter()
                .map(|f| (f.name.as_str(), f.optional, f.aliases.join(",")))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields(1),
            vec![
                ("order", false, String::new()),
                ("note", true, String::new()),
                ("cents", false, "amount,sum".to_owned()),
                ("tip", true, String::new()),
            ]
        );
        assert_eq!(fields(2), vec![("tracking", false, "parcel".to_owned())]);
    }
}
