//! Stored bytes read by a layout into a value that knows its field and
//! variant names, and that value read back by name into the current code's
//! types.
//!
//! Reading drives postcard's own deserializer with the stored layout (so the
//! wire format is postcard's, not a copy of it); the result feeds a serde
//! `Deserializer` that presents structs as maps and enum variants by name,
//! so the derived `Deserialize` of the new type matches fields by name,
//! applies `#[serde(default)]` and `#[serde(alias)]`, and reports a missing
//! field or an unknown variant by name.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::{Container, Field, Fields, Shape};
use crate::codec::{self, CodecError};

/// A stored value with its names.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `()` or a unit struct.
    Unit,
    /// A `bool`.
    Bool(bool),
    /// An unsigned integer up to 64 bits.
    U64(u64),
    /// A signed integer up to 64 bits.
    I64(i64),
    /// A `u128`.
    U128(u128),
    /// An `i128`.
    I128(i128),
    /// An `f32`.
    F32(f32),
    /// An `f64`.
    F64(f64),
    /// A `char`.
    Char(char),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// `None`.
    None,
    /// `Some(_)`.
    Some(Box<Value>),
    /// A sequence.
    Seq(Vec<Value>),
    /// A map.
    Map(Vec<(Value, Value)>),
    /// A tuple, tuple struct or array.
    Tuple(Vec<Value>),
    /// A newtype struct.
    Newtype(Box<Value>),
    /// A struct with named fields.
    Struct(Vec<(String, Value)>),
    /// An enum variant, by name, with its fields.
    Variant(String, Box<Value>),
}

type Types = BTreeMap<String, Container>;

/// Reads a stored envelope (as [`codec::encode`] writes it) by `shape`.
pub fn read(bytes: &[u8], shape: &Shape, types: &Types) -> Result<Value, CodecError> {
    let (&format, payload) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != codec::FORMAT_V1 {
        return Err(CodecError::UnknownFormat { found: format });
    }
    let failed = |reason: String| CodecError::Decode {
        type_name: "a value of a stored layout",
        reason,
    };
    let mut de = postcard::Deserializer::from_bytes(payload);
    let value = ShapeSeed { shape, types }
        .deserialize(&mut de)
        .map_err(|e| failed(e.to_string()))?;
    let rest = de.finalize().map_err(|e| failed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(failed(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// Builds a `T` from `value`, matching fields and variants by name.
pub fn rebuild<T: de::DeserializeOwned>(value: &Value) -> Result<T, CodecError> {
    T::deserialize(ValueDe(value)).map_err(|e| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.0,
    })
}

impl Value {
    /// The value as JSON, with field and variant names (an enum variant as
    /// `{"Name": fields}`, a unit variant as `"Name"`, as serde_json writes
    /// them).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Unit | Value::None => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::U64(n) => J::from(*n),
            Value::I64(n) => J::from(*n),
            Value::U128(n) => u64::try_from(*n).map_or_else(|_| J::String(n.to_string()), J::from),
            Value::I128(n) => i64::try_from(*n).map_or_else(|_| J::String(n.to_string()), J::from),
            Value::F32(f) => J::from(f64::from(*f)),
            Value::F64(f) => J::from(*f),
            Value::Char(c) => J::String(c.to_string()),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
            Value::Some(v) | Value::Newtype(v) => v.to_json(),
            Value::Seq(items) | Value::Tuple(items) => {
                J::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(pairs) => {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        other => other.to_json().to_string(),
                    };
                    map.insert(key, v.to_json());
                }
                J::Object(map)
            }
            Value::Struct(fields) => J::Object(
                fields
                    .iter()
                    .map(|(n, v)| (n.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Variant(name, body) => match **body {
                Value::Unit => J::String(name.clone()),
                ref fields => {
                    let mut map = serde_json::Map::new();
                    map.insert(name.clone(), fields.to_json());
                    J::Object(map)
                }
            },
        }
    }

    /// The field `name` of a struct value (or of a struct variant).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Value::Variant(_, body) => body.field(name),
            _ => None,
        }
    }
}

/// Deserializes one value of `shape` from postcard.
#[derive(Clone, Copy)]
struct ShapeSeed<'a> {
    shape: &'a Shape,
    types: &'a Types,
}

impl<'a> ShapeSeed<'a> {
    fn with(self, shape: &'a Shape) -> ShapeSeed<'a> {
        ShapeSeed {
            shape,
            types: self.types,
        }
    }
}

/// Visits whatever `ShapeSeed` asked the deserializer for.
struct Reader<'a> {
    seed: ShapeSeed<'a>,
    /// What a sequence visit builds: the element shapes of a tuple or the
    /// fields of a struct; `None` for a `Vec`.
    kind: Kind<'a>,
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Plain,
    Seq(&'a Shape),
    Tuple(&'a [Shape]),
    Array(&'a Shape, u64),
    Struct(&'a [Field]),
    Map(&'a Shape, &'a Shape),
    Enum(&'a [(String, Fields)]),
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let plain = Reader {
            seed: self,
            kind: Kind::Plain,
        };
        let with = |kind| Reader { seed: self, kind };
        match self.shape {
            Shape::Unit => d.deserialize_unit(plain),
            Shape::Bool => d.deserialize_bool(plain),
            Shape::I8 => d.deserialize_i8(plain),
            Shape::I16 => d.deserialize_i16(plain),
            Shape::I32 => d.deserialize_i32(plain),
            Shape::I64 => d.deserialize_i64(plain),
            Shape::I128 => d.deserialize_i128(plain),
            Shape::U8 => d.deserialize_u8(plain),
            Shape::U16 => d.deserialize_u16(plain),
            Shape::U32 => d.deserialize_u32(plain),
            Shape::U64 => d.deserialize_u64(plain),
            Shape::U128 => d.deserialize_u128(plain),
            Shape::F32 => d.deserialize_f32(plain),
            Shape::F64 => d.deserialize_f64(plain),
            Shape::Char => d.deserialize_char(plain),
            Shape::Str => d.deserialize_string(plain),
            Shape::Bytes => d.deserialize_byte_buf(plain),
            Shape::Option(inner) => d.deserialize_option(with(Kind::Seq(inner))),
            Shape::Seq(inner) => d.deserialize_seq(with(Kind::Seq(inner))),
            Shape::Map(k, v) => d.deserialize_map(with(Kind::Map(k, v))),
            Shape::Tuple(items) => d.deserialize_tuple(items.len(), with(Kind::Tuple(items))),
            Shape::Array(inner, n) => {
                d.deserialize_tuple(*n as usize, with(Kind::Array(inner, *n)))
            }
            Shape::Unknown => Err(de::Error::custom("a value where the layout knows none")),
            Shape::Named(name) => match self.types.get(name) {
                None => Err(de::Error::custom(format!(
                    "the layout names type `{name}` but does not describe it"
                ))),
                Some(Container::Struct(fields)) => match fields {
                    Fields::Unit => d.deserialize_unit_struct("", plain),
                    Fields::Newtype(inner) => {
                        d.deserialize_newtype_struct("", with(Kind::Seq(inner)))
                    }
                    Fields::Tuple(items) => {
                        d.deserialize_tuple_struct("", items.len(), with(Kind::Tuple(items)))
                    }
                    Fields::Struct(fields) => {
                        d.deserialize_tuple(fields.len(), with(Kind::Struct(fields)))
                    }
                },
                Some(Container::Enum(variants)) => {
                    d.deserialize_enum("", &[], with(Kind::Enum(variants)))
                }
            },
        }
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value laid out as {:?}", self.seed.shape)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Unit)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::I64(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::U128(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::I128(v))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        Ok(Value::F32(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Value, E> {
        Ok(Value::Char(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let Kind::Seq(inner) = self.kind else {
            return Err(de::Error::custom("an option where none was laid out"));
        };
        Ok(Value::Some(Box::new(self.seed.with(inner).deserialize(d)?)))
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let Kind::Seq(inner) = self.kind else {
            return Err(de::Error::custom("a newtype where none was laid out"));
        };
        Ok(Value::Newtype(Box::new(
            self.seed.with(inner).deserialize(d)?,
        )))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let short = || de::Error::custom("the value ends early");
        match self.kind {
            Kind::Seq(inner) => {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element_seed(self.seed.with(inner))? {
                    items.push(v);
                }
                Ok(Value::Seq(items))
            }
            Kind::Tuple(shapes) => {
                let mut items = Vec::with_capacity(shapes.len());
                for s in shapes {
                    items.push(
                        seq.next_element_seed(self.seed.with(s))?
                            .ok_or_else(short)?,
                    );
                }
                Ok(Value::Tuple(items))
            }
            Kind::Array(inner, n) => {
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(
                        seq.next_element_seed(self.seed.with(inner))?
                            .ok_or_else(short)?,
                    );
                }
                Ok(Value::Tuple(items))
            }
            Kind::Struct(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    let v = seq
                        .next_element_seed(self.seed.with(&f.shape))?
                        .ok_or_else(short)?;
                    out.push((f.name.clone(), v));
                }
                Ok(Value::Struct(out))
            }
            _ => Err(de::Error::custom("a sequence where none was laid out")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Kind::Map(k, v) = self.kind else {
            return Err(de::Error::custom("a map where none was laid out"));
        };
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key_seed(self.seed.with(k))? {
            pairs.push((key, map.next_value_seed(self.seed.with(v))?));
        }
        Ok(Value::Map(pairs))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let Kind::Enum(variants) = self.kind else {
            return Err(de::Error::custom("an enum where none was laid out"));
        };
        let (index, access): (u32, _) = data.variant()?;
        let (name, fields) = variants
            .get(index as usize)
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "variant index {index}, but the layout has {} variants",
                    variants.len()
                ))
            })?;
        let reader = |kind| Reader {
            seed: self.seed,
            kind,
        };
        let body = match fields {
            Fields::Unit => {
                access.unit_variant()?;
                Value::Unit
            }
            Fields::Newtype(inner) => Value::Newtype(Box::new(
                access.newtype_variant_seed(self.seed.with(inner))?,
            )),
            Fields::Tuple(items) => {
                access.tuple_variant(items.len(), reader(Kind::Tuple(items)))?
            }
            Fields::Struct(fields) => {
                access.tuple_variant(fields.len(), reader(Kind::Struct(fields)))?
            }
        };
        Ok(Value::Variant(name.clone(), Box::new(body)))
    }
}

/// Why a value could not be rebuilt under the current types (serde's own
/// words: "missing field `cents`", "unknown variant `Express`").
#[derive(Debug)]
struct Mismatch(String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

impl de::Error for Mismatch {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Mismatch(msg.to_string())
    }
}

/// Presents a [`Value`] to a derived `Deserialize`: structs as maps (fields
/// by name), variants by name.
#[derive(Clone, Copy)]
struct ValueDe<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = Mismatch;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::Unit => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::U64(n) => v.visit_u64(*n),
            Value::I64(n) => v.visit_i64(*n),
            Value::U128(n) => v.visit_u128(*n),
            Value::I128(n) => v.visit_i128(*n),
            Value::F32(f) => v.visit_f32(*f),
            Value::F64(f) => v.visit_f64(*f),
            Value::Char(c) => v.visit_char(*c),
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Bytes(b) => v.visit_borrowed_bytes(b),
            Value::None => v.visit_none(),
            Value::Some(inner) => v.visit_some(ValueDe(inner)),
            Value::Newtype(inner) => v.visit_newtype_struct(ValueDe(inner)),
            Value::Seq(items) | Value::Tuple(items) => v.visit_seq(Items(items.iter())),
            Value::Map(pairs) => v.visit_map(Pairs {
                pairs: pairs.iter(),
                value: None,
            }),
            Value::Struct(fields) => v.visit_map(FieldsDe {
                fields: fields.iter(),
                value: None,
            }),
            Value::Variant(..) => v.visit_enum(self),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::None => v.visit_none(),
            Value::Some(inner) => v.visit_some(ValueDe(inner)),
            // a value that became optional
            _ => v.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::Newtype(inner) => v.visit_newtype_struct(ValueDe(inner)),
            _ => v.visit_newtype_struct(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::Variant(..) => v.visit_enum(self),
            other => Err(de::Error::custom(format!(
                "expected an enum variant, the stored value is {}",
                kind(other)
            ))),
        }
    }

    fn is_human_readable(&self) -> bool {
        // the values were written by postcard, a binary format: types that
        // encode differently for humans (uuid, time) must take that branch
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Mismatch> {
        // a removed field's value: dropped whatever it holds
        v.visit_unit()
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Unit => "a unit",
        Value::Bool(_) => "a bool",
        Value::U64(_) | Value::I64(_) | Value::U128(_) | Value::I128(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::Char(_) => "a char",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::None | Value::Some(_) => "an option",
        Value::Seq(_) => "a sequence",
        Value::Map(_) => "a map",
        Value::Tuple(_) => "a tuple",
        Value::Newtype(_) => "a newtype",
        Value::Struct(_) => "a struct",
        Value::Variant(..) => "an enum variant",
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Mismatch;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Mismatch> {
        self.0
            .next()
            .map(|v| seed.deserialize(ValueDe(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Pairs<'a> {
    pairs: std::slice::Iter<'a, (Value, Value)>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Pairs<'de> {
    type Error = Mismatch;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Mismatch> {
        let Some((k, v)) = self.pairs.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        seed.deserialize(ValueDe(k)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Mismatch> {
        let v = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a key without a value"))?;
        seed.deserialize(ValueDe(v))
    }
}

struct FieldsDe<'a> {
    fields: std::slice::Iter<'a, (String, Value)>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for FieldsDe<'de> {
    type Error = Mismatch;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Mismatch> {
        let Some((name, v)) = self.fields.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        let key = de::value::BorrowedStrDeserializer::<Mismatch>::new(name.as_str());
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Mismatch> {
        let v = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a field without a value"))?;
        seed.deserialize(ValueDe(v))
    }
}

impl<'de> EnumAccess<'de> for ValueDe<'de> {
    type Error = Mismatch;
    type Variant = ValueDe<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Mismatch> {
        let Value::Variant(name, body) = self.0 else {
            return Err(de::Error::custom("not an enum variant"));
        };
        let key = de::value::BorrowedStrDeserializer::<Mismatch>::new(name.as_str());
        Ok((seed.deserialize(key)?, ValueDe(body)))
    }
}

impl<'de> VariantAccess<'de> for ValueDe<'de> {
    type Error = Mismatch;
    fn unit_variant(self) -> Result<(), Mismatch> {
        match self.0 {
            Value::Unit => Ok(()),
            other => Err(de::Error::custom(format!(
                "the variant is now a unit variant, the stored one holds {}",
                kind(other)
            ))),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Mismatch> {
        match self.0 {
            Value::Newtype(inner) => seed.deserialize(ValueDe(inner)),
            other => Err(de::Error::custom(format!(
                "the variant now holds one value, the stored one holds {}",
                kind(other)
            ))),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::Tuple(items) => v.visit_seq(Items(items.iter())),
            other => Err(de::Error::custom(format!(
                "the variant now holds a tuple, the stored one holds {}",
                kind(other)
            ))),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Mismatch> {
        match self.0 {
            Value::Struct(fields) => v.visit_map(FieldsDe {
                fields: fields.iter(),
                value: None,
            }),
            other => Err(de::Error::custom(format!(
                "the variant now has named fields, the stored one holds {}",
                kind(other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::layout::trace;

    mod old {
        use super::*;
        #[derive(Serialize, Deserialize)]
        pub(super) struct Order {
            pub(super) id: String,
            pub(super) qty: u32,
            pub(super) cents: u32,
            pub(super) speed: Speed,
        }
        #[derive(Serialize, Deserialize)]
        pub(super) enum Speed {
            Slow,
            Fast { hours: u8 },
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        id: String,
        cents: u64,
        qty: u32,
        #[serde(default)]
        note: String,
        speed: Speed,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Speed {
        Express,
        Fast { hours: u8 },
        Slow,
    }

    #[test]
    fn a_reordered_struct_is_rebuilt_by_name_not_position() {
        let bytes = codec::encode(&old::Order {
            id: "o-1".into(),
            qty: 3,
            cents: 1999,
            speed: old::Speed::Fast { hours: 4 },
        })
        .unwrap();
        // positionally, the new type reads qty as cents: the misread
        let misread: Order = codec::decode(&bytes).unwrap_or(Order {
            id: String::new(),
            cents: 3,
            qty: 0,
            note: String::new(),
            speed: Speed::Slow,
        });
        assert_ne!(misread.cents, 1999);
        let (shape, types) = trace::<old::Order>().unwrap();
        let value = read(&bytes, &shape, &types).unwrap();
        assert_eq!(value.field("cents"), Some(&Value::U64(1999)));
        let order: Order = rebuild(&value).unwrap();
        assert_eq!(
            order,
            Order {
                id: "o-1".into(),
                cents: 1999,
                qty: 3,
                note: String::new(),
                speed: Speed::Fast { hours: 4 },
            }
        );
        assert_eq!(
            value.to_json(),
            serde_json::json!({"id": "o-1", "qty": 3, "cents": 1999, "speed": {"Fast": {"hours": 4}}})
        );
    }

    #[test]
    fn a_missing_field_without_default_is_named() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Stricter {
            id: String,
            total: u64,
        }
        let bytes = codec::encode(&old::Order {
            id: "o".into(),
            qty: 1,
            cents: 2,
            speed: old::Speed::Slow,
        })
        .unwrap();
        let (shape, types) = trace::<old::Order>().unwrap();
        let value = read(&bytes, &shape, &types).unwrap();
        let err = rebuild::<Stricter>(&value).unwrap_err().to_string();
        assert!(err.contains("missing field `total`"), "{err}");
    }

    #[test]
    fn bytes_that_do_not_fit_the_layout_are_refused() {
        let (shape, types) = trace::<old::Order>().unwrap();
        let bytes = codec::encode(&(1u8,)).unwrap();
        assert!(read(&bytes, &shape, &types).is_err());
        let mut long = codec::encode(&old::Order {
            id: "o".into(),
            qty: 1,
            cents: 2,
            speed: old::Speed::Slow,
        })
        .unwrap();
        long.push(0);
        assert!(read(&long, &shape, &types).is_err());
    }
}
