//! Reads a type's layout off its `Deserialize` impl.
//!
//! The probe is a serde `Deserializer` that answers every request with a
//! placeholder value and writes down what was asked for: `deserialize_struct`
//! names the struct and its fields, `deserialize_enum` its variants,
//! `deserialize_u32` a `u32`. One pass sees one variant of each enum, so
//! passes repeat, each taking a variant not seen yet (or, once an enum is
//! complete, one that leads to an enum that is not), until every variant of
//! every reachable enum is known. A recursive type ends where it recurses: a
//! sequence is left empty, an enum takes a variant already known to end.
//!
//! serde-reflection does the same for a top-level type but cannot reach an
//! enum nested in one variant of another without tracing the nested type by
//! hand; the runtime never has those types, so it traces this way.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::names::rename;
use super::{Container, Field, Fields, Shape};

type Types = BTreeMap<String, Container>;

/// Traces `T`: its shape and every named type it reaches.
pub(crate) fn trace<T: de::DeserializeOwned>() -> Result<(Shape, Types), String> {
    let mut t = Trace::default();
    let mut root = None;
    let mut idle = 0;
    for _ in 0..10_000 {
        let before = t.progress();
        let mut slot = None;
        match T::deserialize(Probe {
            t: &mut t,
            slot: &mut slot,
        }) {
            Ok(_) => root = slot,
            Err(Probing::Recursion) => {}
            Err(Probing::Failed(why)) => return Err(why),
            Err(Probing::Missing(field)) => return Err(format!("missing field `{field}`")),
        }
        if root.is_some() && t.incomplete().is_empty() {
            break;
        }
        idle = if t.progress() == before { idle + 1 } else { 0 };
        if idle > 2 {
            let missing = t.incomplete();
            return Err(if missing.is_empty() {
                "the type recurses without a variant that ends".into()
            } else {
                format!(
                    "the variants or fields of {} cannot be reached",
                    missing.join(", ")
                )
            });
        }
    }
    let root = root.ok_or("the type recurses without a variant that ends")?;
    let mut types = t.structs;
    for (name, variants) in t.enums {
        let variants = variants
            .into_iter()
            .map(|(n, f)| {
                f.map(|f| (n.to_owned(), f))
                    .ok_or_else(|| format!("variant `{n}` of `{name}` was not reached"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        types.insert(name.to_owned(), Container::Enum(variants));
    }
    Ok(rename(root, types))
}

#[derive(Default)]
struct Trace {
    structs: Types,
    /// Each enum's variants in index order, with their fields once seen.
    enums: BTreeMap<&'static str, Vec<(&'static str, Option<Fields>)>>,
    /// Containers being traced (a recursion check).
    stack: Vec<&'static str>,
    /// Variants whose last visit ran into a recursion: tried after others.
    stuck: HashSet<(&'static str, usize)>,
    /// What is known of each struct's fields so far.
    learning: BTreeMap<&'static str, Learning>,
    /// For a type that refused the placeholder string or bytes offered
    /// it (a UUID wants 16 bytes, a date a date), the next one to offer.
    placeholder: BTreeMap<&'static str, usize>,
}

/// Strings offered, in turn, to a type that parses its string.
const STRINGS: &[&str] = &[
    "",
    "a",
    "0",
    "1970-01-01T00:00:00Z",
    "00000000-0000-0000-0000-000000000000",
    "1970-01-01",
    "00:00:00",
    "PT0S",
];

/// Byte strings offered, in turn, to a type that checks its bytes' length.
const BYTES: &[&[u8]] = &[
    &[],
    &[0; 16],
    &[0; 32],
    &[0; 8],
    &[0; 4],
    &[0; 12],
    &[0; 20],
    &[0; 64],
];

/// A struct's fields are learned by offering them by name, one pass at a
/// time. serde lists a field's aliases beside its name (sorted, in one run
/// per field): a name that belongs to a field offered already is a
/// duplicate (serde says so, naming the field), is left out from then on,
/// and names its run. Once a pass takes every name offered, the fields are
/// known; then each pass leaves one field out, and whether the value still
/// reads says whether a stored value may lack it (`#[serde(default)]`, an
/// `Option`).
#[derive(Default)]
struct Learning {
    /// Indexes into the field list not to offer again (aliases).
    skip: std::collections::BTreeSet<usize>,
    /// The field's own name, by the index of the first name of its run.
    name: BTreeMap<usize, String>,
    /// Each field's shape, by the index of its run, once a pass took them all.
    shapes: BTreeMap<usize, Shape>,
    /// Whether a value without the field reads, by the index of its run.
    optional: BTreeMap<usize, bool>,
    /// Whether the struct is in [`Trace::structs`] with all of the above.
    defined: bool,
}

impl Learning {
    /// The index of each field's run of names (its first name).
    fn runs(&self, names: usize) -> Vec<usize> {
        (0..names).filter(|i| !self.skip.contains(i)).collect()
    }

    /// The field to leave out this pass, once every field is known.
    fn omit(&self, runs: &[usize]) -> Option<usize> {
        if self.shapes.is_empty() && !runs.is_empty() {
            return None;
        }
        runs.iter()
            .copied()
            .find(|r| !self.optional.contains_key(r))
    }

    /// The fields as far as they are known.
    fn fields(&self, names: &[&'static str]) -> Vec<Field> {
        let runs = self.runs(names.len());
        runs.iter()
            .enumerate()
            .filter_map(|(k, &r)| {
                let end = runs.get(k + 1).copied().unwrap_or(names.len());
                let own = self
                    .name
                    .get(&r)
                    .cloned()
                    .unwrap_or_else(|| names[r].to_owned());
                let shape = self.shapes.get(&r)?.clone();
                Some(Field {
                    aliases: names[r..end]
                        .iter()
                        .filter(|n| **n != own)
                        .map(|n| (*n).to_owned())
                        .collect(),
                    optional: self.optional.get(&r).copied().unwrap_or(false),
                    name: own,
                    shape,
                })
            })
            .collect()
    }
}

impl Trace {
    fn progress(&self) -> (usize, usize, usize, usize, usize) {
        let known = self
            .enums
            .values()
            .flatten()
            .filter(|(_, f)| f.is_some())
            .count();
        let learned = self
            .learning
            .values()
            .map(|l| l.skip.len() + l.optional.len() + usize::from(!l.shapes.is_empty()))
            .sum();
        let tried = self.placeholder.values().sum();
        (known, self.stuck.len(), self.structs.len(), learned, tried)
    }

    /// The enums with variants not seen yet and the structs whose fields
    /// are not all learned.
    fn incomplete(&self) -> Vec<String> {
        let enums = self
            .enums
            .iter()
            .filter(|(_, v)| v.iter().any(|(_, f)| f.is_none()))
            .map(|(n, _)| *n);
        let structs = self
            .learning
            .iter()
            .filter(|(_, l)| !l.defined)
            .map(|(n, _)| *n);
        enums.chain(structs).map(|n| format!("`{n}`")).collect()
    }

    /// Whether a value of `fields` can reach a type in `targets`, or (with
    /// `incomplete`) an enum with variants still unseen or a struct whose
    /// fields are still being learned.
    fn reaches(
        &self,
        fields: &Fields,
        targets: &[&str],
        incomplete: bool,
        seen: &mut HashSet<String>,
    ) -> bool {
        let shapes: Vec<&Shape> = match fields {
            Fields::Unit => vec![],
            Fields::Newtype(s) => vec![s],
            Fields::Tuple(items) => items.iter().collect(),
            Fields::Struct(fields) => fields.iter().map(|f| &f.shape).collect(),
        };
        shapes
            .into_iter()
            .any(|s| self.shape_reaches(s, targets, incomplete, seen))
    }

    fn shape_reaches(
        &self,
        shape: &Shape,
        targets: &[&str],
        incomplete: bool,
        seen: &mut HashSet<String>,
    ) -> bool {
        match shape {
            Shape::Option(s) | Shape::Seq(s) | Shape::Array(s, _) => {
                self.shape_reaches(s, targets, incomplete, seen)
            }
            Shape::Map(k, v) => {
                self.shape_reaches(k, targets, incomplete, seen)
                    || self.shape_reaches(v, targets, incomplete, seen)
            }
            Shape::Tuple(items) => items
                .iter()
                .any(|s| self.shape_reaches(s, targets, incomplete, seen)),
            Shape::Named(name) => {
                if targets.contains(&name.as_str()) {
                    return true;
                }
                if incomplete && self.learning.get(name.as_str()).is_some_and(|l| !l.defined) {
                    return true;
                }
                if !seen.insert(name.clone()) {
                    return false;
                }
                if let Some(Container::Struct(f)) = self.structs.get(name) {
                    return self.reaches(f, targets, incomplete, seen);
                }
                match self.enums.get(name.as_str()) {
                    Some(variants) => variants.iter().any(|(_, f)| match f {
                        None => incomplete,
                        Some(f) => self.reaches(f, targets, incomplete, seen),
                    }),
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// The variant of `name` to visit next.
    fn choose(&self, name: &'static str, on_stack: bool) -> Option<usize> {
        let variants = &self.enums[name];
        let ends = |f: &Fields| !self.reaches(f, &self.stack, false, &mut HashSet::new());
        if on_stack {
            // inside itself: a variant known to end, or give up this pass
            return variants
                .iter()
                .position(|(_, f)| f.as_ref().is_some_and(ends));
        }
        let unseen = |i: &usize| variants[*i].1.is_none();
        let fresh = (0..variants.len()).find(|i| unseen(i) && !self.stuck.contains(&(name, *i)));
        fresh
            .or_else(|| (0..variants.len()).find(unseen))
            .or_else(|| {
                // not through itself: that visit would take a variant that ends
                let barrier = || HashSet::from([name.to_owned()]);
                variants.iter().position(|(_, f)| {
                    f.as_ref()
                        .is_some_and(|f| self.reaches(f, &[], true, &mut barrier()))
                })
            })
            .or(Some(0))
    }

    /// Offers visitor `V` this pass's placeholder of `candidates`: one it
    /// refuses moves it to the next (from the next pass on), until none is
    /// left and its refusal is the answer.
    fn offer<'de, V: Visitor<'de>, T>(
        &mut self,
        candidates: &[T],
        visit: impl FnOnce(&T) -> Result<V::Value, Probing>,
    ) -> Result<V::Value, Probing> {
        let key = std::any::type_name::<V::Value>();
        let k = self.placeholder.get(key).copied().unwrap_or(0);
        match visit(&candidates[k.min(candidates.len() - 1)]) {
            Err(Probing::Failed(_)) if k + 1 < candidates.len() => {
                self.placeholder.insert(key, k + 1);
                Err(Probing::Recursion)
            }
            other => other,
        }
    }

    fn define(&mut self, name: &'static str, container: Fields) -> Result<(), Probing> {
        match self.structs.get(name) {
            Some(Container::Struct(known)) if *known != container => Err(Probing::Failed(format!(
                "two types named `{name}` have different layouts (generic instances of one type, or two types of one name)"
            ))),
            _ => {
                self.structs
                    .insert(name.to_owned(), Container::Struct(container));
                Ok(())
            }
        }
    }
}

#[derive(Debug)]
enum Probing {
    /// A container was met inside itself with no way out this pass.
    Recursion,
    /// serde found no value for a field (one left out on purpose).
    Missing(&'static str),
    Failed(String),
}

impl fmt::Display for Probing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probing::Recursion => f.write_str("recursion"),
            Probing::Missing(field) => write!(f, "missing field `{field}`"),
            Probing::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Probing {}

impl de::Error for Probing {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Probing::Failed(msg.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        Probing::Missing(field)
    }
}

struct Probe<'t> {
    t: &'t mut Trace,
    slot: &'t mut Option<Shape>,
}

impl<'t> Probe<'t> {
    fn shape(self, shape: Shape) -> &'t mut Trace {
        *self.slot = Some(shape);
        self.t
    }

    /// Enters container `name`; `Recursion` when it is already being traced
    /// twice (once inside itself is allowed: an enum on the way may end it).
    fn enter(self, name: &'static str) -> Result<&'t mut Trace, Probing> {
        let t = self.shape(Shape::Named(name.to_owned()));
        if t.stack.iter().filter(|n| **n == name).count() >= 2 {
            return Err(Probing::Recursion);
        }
        t.stack.push(name);
        Ok(t)
    }
}

macro_rules! primitive {
    ($($method:ident => $shape:ident, $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
            self.shape(Shape::$shape);
            v.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Probing;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Probing> {
        Err(Probing::Failed(
            "it asks for a self-describing format (`#[serde(untagged)]`, `flatten`, an internally tagged enum, or a hand-written `Deserialize`), which postcard cannot store either".into(),
        ))
    }

    primitive! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => I8, visit_i8(1);
        deserialize_i16 => I16, visit_i16(1);
        deserialize_i32 => I32, visit_i32(1);
        deserialize_i64 => I64, visit_i64(1);
        deserialize_i128 => I128, visit_i128(1);
        deserialize_u8 => U8, visit_u8(1);
        deserialize_u16 => U16, visit_u16(1);
        deserialize_u32 => U32, visit_u32(1);
        deserialize_u64 => U64, visit_u64(1);
        deserialize_u128 => U128, visit_u128(1);
        deserialize_f32 => F32, visit_f32(0.0);
        deserialize_f64 => F64, visit_f64(0.0);
        deserialize_char => Char, visit_char('a');
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let t = self.shape(Shape::Str);
        t.offer::<V, _>(STRINGS, |s| v.visit_str(s))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let t = self.shape(Shape::Str);
        t.offer::<V, _>(STRINGS, |s| v.visit_string((*s).to_owned()))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let t = self.shape(Shape::Bytes);
        t.offer::<V, _>(BYTES, |b| v.visit_bytes(b))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let t = self.shape(Shape::Bytes);
        t.offer::<V, _>(BYTES, |b| v.visit_byte_buf(b.to_vec()))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        self.shape(Shape::Unit);
        v.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let mut inner = None;
        let out = v.visit_some(Probe {
            t: self.t,
            slot: &mut inner,
        });
        *self.slot = inner.map(|s| Shape::Option(Box::new(s)));
        out
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Probing> {
        let name = std::any::type_name::<V::Value>();
        let t = self.enter(name)?;
        t.stack.pop();
        t.define(name, Fields::Unit)?;
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Probing> {
        let name = std::any::type_name::<V::Value>();
        let t = self.enter(name)?;
        let mut inner = None;
        let out = v.visit_newtype_struct(Probe {
            t: &mut *t,
            slot: &mut inner,
        });
        t.stack.pop();
        let out = out?;
        let inner = inner.ok_or_else(|| Probing::Failed(format!("`{name}` has no inner value")))?;
        t.define(name, Fields::Newtype(inner))?;
        Ok(out)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let mut elem = None;
        let out = v.visit_seq(Elements {
            t: &mut *self.t,
            elem: &mut elem,
            done: false,
        });
        *self.slot = elem.map(|s| Shape::Seq(Box::new(s)));
        if self.slot.is_none() {
            return Err(Probing::Failed(
                "a sequence whose element type was not asked for".into(),
            ));
        }
        out
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Probing> {
        let mut shapes = Vec::with_capacity(len);
        let out = v.visit_seq(Fixed {
            t: &mut *self.t,
            shapes: &mut shapes,
            len,
        })?;
        *self.slot = Some(Shape::Tuple(shapes));
        Ok(out)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Probing> {
        let name = std::any::type_name::<V::Value>();
        let t = self.enter(name)?;
        let mut shapes = Vec::with_capacity(len);
        let out = v.visit_seq(Fixed {
            t: &mut *t,
            shapes: &mut shapes,
            len,
        });
        t.stack.pop();
        let out = out?;
        t.define(name, Fields::Tuple(shapes))?;
        Ok(out)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        let (mut key, mut value) = (None, None);
        let out = v.visit_map(Entries {
            t: &mut *self.t,
            key: &mut key,
            value: &mut value,
            done: false,
        })?;
        match (key, value) {
            (Some(k), Some(v)) => *self.slot = Some(Shape::Map(Box::new(k), Box::new(v))),
            _ => {
                return Err(Probing::Failed(
                    "a map whose key or value type was not asked for".into(),
                ));
            }
        }
        Ok(out)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Probing> {
        let name = std::any::type_name::<V::Value>();
        let t = self.enter(name)?;
        by_name(t, name, fields, v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Probing> {
        let name = std::any::type_name::<V::Value>();
        if variants.is_empty() {
            return Err(Probing::Failed(format!("enum `{name}` has no variants")));
        }
        let t = self.shape(Shape::Named(name.to_owned()));
        let known = t
            .enums
            .entry(name)
            .or_insert_with(|| variants.iter().map(|v| (*v, None)).collect());
        if known.len() != variants.len() || known.iter().zip(variants).any(|((a, _), b)| a != b) {
            return Err(Probing::Failed(format!(
                "two enums named `{name}` have different variants"
            )));
        }
        let on_stack = t.stack.contains(&name);
        let Some(index) = t.choose(name, on_stack) else {
            return Err(Probing::Recursion);
        };
        t.stack.push(name);
        let mut fields = None;
        let out = v.visit_enum(Variant {
            t: &mut *t,
            index,
            fields: &mut fields,
        });
        t.stack.pop();
        match out {
            Ok(value) => {
                if let Some(f) = fields {
                    t.enums.get_mut(name).expect("enum registered above")[index].1 = Some(f);
                }
                Ok(value)
            }
            Err(Probing::Recursion) => {
                t.stuck.insert((name, index));
                Err(Probing::Recursion)
            }
            Err(e) => Err(e),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Probing> {
        Err(Probing::Failed("an identifier outside an enum".into()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Probing> {
        v.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Visits struct `name` as a map of the names not known to be aliases of
/// an earlier one, less the field being left out this pass (see
/// [`Learning`]).
fn by_name<'de, V: Visitor<'de>>(
    t: &mut Trace,
    name: &'static str,
    fields: &'static [&'static str],
    v: V,
) -> Result<V::Value, Probing> {
    let learning = t.learning.entry(name).or_default();
    let runs = learning.runs(fields.len());
    let omit = learning.omit(&runs);
    let offer: Vec<usize> = runs.iter().copied().filter(|r| Some(*r) != omit).collect();
    let mut got: Vec<(usize, Shape)> = Vec::new();
    let mut offered = 0;
    let out = v.visit_map(Named {
        t: &mut *t,
        fields,
        offer: &offer,
        offered: &mut offered,
        got: &mut got,
    });
    t.stack.pop();
    let learning = t.learning.get_mut(name).expect("being learned");
    match out {
        Ok(out) => {
            learning.shapes.extend(got);
            if let Some(left_out) = omit {
                learning.optional.insert(left_out, true);
            }
            let complete = learning.optional.len() == runs.len();
            let known = Fields::Struct(learning.fields(fields));
            if complete && learning.defined {
                t.define(name, known)?;
            } else {
                learning.defined = complete;
                t.structs.insert(name.to_owned(), Container::Struct(known));
            }
            Ok(out)
        }
        Err(Probing::Missing(_)) if omit.is_some() => {
            learning.optional.extend(omit.map(|r| (r, false)));
            Err(Probing::Recursion)
        }
        Err(Probing::Failed(why))
            if offered > got.len() && why.starts_with("duplicate field `") =>
        {
            // the last name offered was refused: an alias of a field offered before it
            let dup = offer[offered - 1];
            let field = why
                .strip_prefix("duplicate field `")
                .and_then(|w| w.strip_suffix('`'))
                .ok_or_else(|| Probing::Failed(why.clone()))?
                .to_owned();
            learning.skip.insert(dup);
            let start = (0..dup)
                .rev()
                .find(|i| !learning.skip.contains(i))
                .unwrap_or(0);
            learning.name.insert(start, field);
            Err(Probing::Recursion)
        }
        Err(e) => Err(e),
    }
}

/// A struct offered as a map of its names.
struct Named<'t> {
    t: &'t mut Trace,
    fields: &'static [&'static str],
    offer: &'t [usize],
    offered: &'t mut usize,
    got: &'t mut Vec<(usize, Shape)>,
}

impl<'de> MapAccess<'de> for Named<'_> {
    type Error = Probing;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Probing> {
        let Some(&i) = self.offer.get(*self.offered) else {
            return Ok(None);
        };
        *self.offered += 1;
        seed.deserialize(de::value::BorrowedStrDeserializer::<Probing>::new(
            self.fields[i],
        ))
        .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Probing> {
        let i = self.offer[*self.offered - 1];
        let mut slot = None;
        let v = seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut slot,
        })?;
        self.got.push((
            i,
            slot.ok_or_else(|| Probing::Failed("a field of unknown type".into()))?,
        ));
        Ok(v)
    }
}

/// A sequence: one element is traced, then it ends (an element that
/// recurses leaves it empty).
struct Elements<'t> {
    t: &'t mut Trace,
    elem: &'t mut Option<Shape>,
    done: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Probing;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Probing> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        match seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut *self.elem,
        }) {
            Ok(v) => Ok(Some(v)),
            Err(Probing::Recursion) if self.elem.is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A tuple or a struct's fields: exactly `len` elements.
struct Fixed<'t> {
    t: &'t mut Trace,
    shapes: &'t mut Vec<Shape>,
    len: usize,
}

impl<'de> SeqAccess<'de> for Fixed<'_> {
    type Error = Probing;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Probing> {
        if self.shapes.len() == self.len {
            return Ok(None);
        }
        let mut slot = None;
        let v = seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut slot,
        })?;
        self.shapes
            .push(slot.ok_or_else(|| Probing::Failed("an element of unknown type".into()))?);
        Ok(Some(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.shapes.len())
    }
}

/// A map: one entry is traced.
struct Entries<'t> {
    t: &'t mut Trace,
    key: &'t mut Option<Shape>,
    value: &'t mut Option<Shape>,
    done: bool,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Probing;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Probing> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut *self.key,
        })
        .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Probing> {
        seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut *self.value,
        })
    }
}

/// The variant chosen for this pass.
struct Variant<'t> {
    t: &'t mut Trace,
    index: usize,
    fields: &'t mut Option<Fields>,
}

impl<'de, 't> EnumAccess<'de> for Variant<'t> {
    type Error = Probing;
    type Variant = Variant<'t>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'t>), Probing> {
        let index = de::value::U32Deserializer::<Probing>::new(self.index as u32);
        Ok((seed.deserialize(index)?, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Probing;
    fn unit_variant(self) -> Result<(), Probing> {
        *self.fields = Some(Fields::Unit);
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Probing> {
        let mut inner = None;
        let out = seed.deserialize(Probe {
            t: &mut *self.t,
            slot: &mut inner,
        })?;
        *self.fields =
            Some(Fields::Newtype(inner.ok_or_else(|| {
                Probing::Failed("a variant of unknown type".into())
            })?));
        Ok(out)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Probing> {
        let mut shapes = Vec::with_capacity(len);
        let out = v.visit_seq(Fixed {
            t: &mut *self.t,
            shapes: &mut shapes,
            len,
        })?;
        *self.fields = Some(Fields::Tuple(shapes));
        Ok(out)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        names: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Probing> {
        let mut shapes = Vec::with_capacity(names.len());
        let out = v.visit_seq(Fixed {
            t: &mut *self.t,
            shapes: &mut shapes,
            len: names.len(),
        })?;
        if shapes.len() != names.len() {
            return Err(Probing::Failed(
                "an enum variant's fields have `#[serde(alias)]`es, whose names cannot be told apart; move the fields into a struct".into(),
            ));
        }
        *self.fields = Some(Fields::Struct(
            names
                .iter()
                .zip(shapes)
                .map(|(n, shape)| Field::new(*n, shape))
                .collect(),
        ));
        Ok(out)
    }
}
