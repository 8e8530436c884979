//! The probe: a serde `Deserializer` that answers every request with a
//! placeholder and writes down what was asked for (see [`super`]).

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::{BYTES, Learner, Probing, STRINGS, Trace};
use crate::layout::{Container, Field, Fields, Shape};

/// The deserializer handed to a type's `Deserialize`: it answers with
/// placeholders and records what was asked for in `t`; the shape it was
/// asked for goes to `slot`.
pub(super) struct Probe<'t> {
    pub(super) t: &'t mut Trace,
    pub(super) slot: &'t mut Option<Shape>,
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
        let out = by_name(t, Learner::Struct(name), fields, v);
        t.stack.pop();
        let (out, known, complete) = out?;
        let learning = t
            .learning
            .get_mut(&Learner::Struct(name))
            .expect("being learned");
        let known = Fields::Struct(known);
        if complete && learning.defined {
            t.define(name, known)?;
        } else {
            learning.defined = complete;
            t.structs.insert(name.to_owned(), Container::Struct(known));
        }
        Ok(out)
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
            name,
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

/// The field of a state variant that keeps what the variant awaits.
const AWAIT_FIELD: &str = "__await";

/// Offers the fields of a struct or a struct variant by name: the names
/// not known to be aliases of an earlier one, less the field being left
/// out this pass (see [`Learning`]). Gives the value, the fields known so
/// far, and whether they are all learned.
fn by_name<'de, V: Visitor<'de>>(
    t: &mut Trace,
    key: Learner,
    fields: &'static [&'static str],
    v: V,
) -> Result<(V::Value, Vec<Field>, bool), Probing> {
    let learning = t.learning.entry(key).or_default();
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
    let learning = t.learning.get_mut(&key).expect("being learned");
    match out {
        Ok(out) => {
            learning.shapes.extend(got);
            if let Some(left_out) = omit {
                learning.optional.insert(left_out, true);
            }
            let complete = learning.optional.len() == runs.len();
            Ok((out, learning.fields(fields), complete))
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

/// A tuple's elements: exactly `len`.
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
    /// The enum's name.
    name: &'static str,
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
        let key = Learner::Variant(self.name, self.index);
        let (out, mut known, complete) = by_name(self.t, key, names, v)?;
        // a state variant's `__await` stores nothing when it awaits a
        // command (a unit, no bytes): not part of the layout
        known.retain(|f| !(f.name == AWAIT_FIELD && f.shape == Shape::Unit));
        // the variant counts as seen once its fields are all learned
        if complete {
            *self.fields = Some(Fields::Struct(known));
        }
        Ok(out)
    }
}
