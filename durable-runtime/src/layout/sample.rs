//! Reads the layout of one value off its `Serialize` impl: what a signal's
//! sender wrote, for any `T: Serialize` (a `&str` included).
//!
//! The recorder is a serde `Serializer` that writes nothing but the shape
//! of what it is given: field names, integer widths, the variant each enum
//! value is in (by index and name). Only what the value holds is known: the
//! other variants of an enum are holes (named `""`), the element of an empty
//! sequence or of a `None` is [`Shape::Unknown`]; neither is ever read,
//! since the value has nothing there. Named types are keyed by their Rust
//! type names, as the `Deserialize` tracer keys them.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{self, Serialize};

use super::names::rename;
use super::{Container, Field, Fields, Shape, ValueLayout};

/// The layout of `value`.
pub(crate) fn of_value<T: Serialize + ?Sized>(value: &T) -> Result<ValueLayout, String> {
    let mut types = Types::new();
    let shape = shape_of(value, &mut types).map_err(|e| e.0)?;
    let (shape, types) = rename(shape, types);
    Ok(ValueLayout { shape, types })
}

type Types = BTreeMap<String, Container>;

#[derive(Debug)]
struct Failed(String);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

impl ser::Error for Failed {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Failed(msg.to_string())
    }
}

fn shape_of<T: Serialize + ?Sized>(value: &T, types: &mut Types) -> Result<Shape, Failed> {
    value.serialize(Recorder {
        types,
        name: std::any::type_name::<T>(),
    })
}

/// Two shapes seen for one position (elements of one sequence): the one
/// that knows more, or an error if they disagree.
fn merge(a: Shape, b: Shape) -> Result<Shape, Failed> {
    Ok(match (a, b) {
        (Shape::Unknown, x) | (x, Shape::Unknown) => x,
        (Shape::Option(a), Shape::Option(b)) => Shape::Option(Box::new(merge(*a, *b)?)),
        (Shape::Seq(a), Shape::Seq(b)) => Shape::Seq(Box::new(merge(*a, *b)?)),
        (Shape::Map(ak, av), Shape::Map(bk, bv)) => {
            Shape::Map(Box::new(merge(*ak, *bk)?), Box::new(merge(*av, *bv)?))
        }
        (a, b) if a == b => a,
        (a, b) => return Err(Failed(format!("elements laid out as {a:?} and {b:?}"))),
    })
}

/// Adds what one value showed of container `name` to what is known of it.
fn define(types: &mut Types, name: &str, container: Container) -> Result<(), Failed> {
    let merged = match (types.remove(name), container) {
        (None, c) => c,
        (Some(Container::Enum(mut known)), Container::Enum(seen)) => {
            if seen.len() > known.len() {
                known.resize(seen.len(), (String::new(), Fields::Unit));
            }
            for (i, (n, f)) in seen.into_iter().enumerate() {
                if !n.is_empty() {
                    known[i] = (n, f);
                }
            }
            Container::Enum(known)
        }
        (Some(a), b) if a == b => a,
        (Some(a), b) => {
            return Err(Failed(format!(
                "values of `{name}` laid out as {a:?} and {b:?}"
            )));
        }
    };
    types.insert(name.to_owned(), merged);
    Ok(())
}

fn variant(index: u32, name: &str, fields: Fields) -> Container {
    let mut variants = vec![(String::new(), Fields::Unit); index as usize];
    variants.push((name.to_owned(), fields));
    Container::Enum(variants)
}

struct Recorder<'t> {
    types: &'t mut Types,
    /// The Rust type being serialized (the key of a named container).
    name: &'static str,
}

macro_rules! primitive {
    ($($method:ident($ty:ty) => $shape:ident;)*) => {$(
        fn $method(self, _v: $ty) -> Result<Shape, Failed> {
            Ok(Shape::$shape)
        }
    )*};
}

impl<'t> ser::Serializer for Recorder<'t> {
    type Ok = Shape;
    type Error = Failed;
    type SerializeSeq = Elements<'t>;
    type SerializeTuple = Items<'t>;
    type SerializeTupleStruct = Items<'t>;
    type SerializeTupleVariant = Items<'t>;
    type SerializeMap = Entries<'t>;
    type SerializeStruct = Named<'t>;
    type SerializeStructVariant = Named<'t>;

    primitive! {
        serialize_bool(bool) => Bool;
        serialize_i8(i8) => I8;
        serialize_i16(i16) => I16;
        serialize_i32(i32) => I32;
        serialize_i64(i64) => I64;
        serialize_i128(i128) => I128;
        serialize_u8(u8) => U8;
        serialize_u16(u16) => U16;
        serialize_u32(u32) => U32;
        serialize_u64(u64) => U64;
        serialize_u128(u128) => U128;
        serialize_f32(f32) => F32;
        serialize_f64(f64) => F64;
        serialize_char(char) => Char;
        serialize_str(&str) => Str;
        serialize_bytes(&[u8]) => Bytes;
    }

    fn serialize_none(self) -> Result<Shape, Failed> {
        Ok(Shape::Option(Box::new(Shape::Unknown)))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Shape, Failed> {
        Ok(Shape::Option(Box::new(shape_of(value, self.types)?)))
    }
    fn serialize_unit(self) -> Result<Shape, Failed> {
        Ok(Shape::Unit)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Shape, Failed> {
        define(self.types, self.name, Container::Struct(Fields::Unit))?;
        Ok(Shape::Named(self.name.to_owned()))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        var: &'static str,
    ) -> Result<Shape, Failed> {
        define(self.types, self.name, variant(index, var, Fields::Unit))?;
        Ok(Shape::Named(self.name.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Shape, Failed> {
        let inner = shape_of(value, self.types)?;
        define(
            self.types,
            self.name,
            Container::Struct(Fields::Newtype(inner)),
        )?;
        Ok(Shape::Named(self.name.to_owned()))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        var: &'static str,
        value: &T,
    ) -> Result<Shape, Failed> {
        let inner = shape_of(value, self.types)?;
        define(
            self.types,
            self.name,
            variant(index, var, Fields::Newtype(inner)),
        )?;
        Ok(Shape::Named(self.name.to_owned()))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Elements<'t>, Failed> {
        Ok(Elements {
            types: self.types,
            elem: Shape::Unknown,
        })
    }
    fn serialize_tuple(self, _len: usize) -> Result<Items<'t>, Failed> {
        Ok(Items {
            types: self.types,
            items: Vec::new(),
            done: Done::Tuple,
        })
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Items<'t>, Failed> {
        Ok(Items {
            types: self.types,
            items: Vec::new(),
            done: Done::Struct(self.name),
        })
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        var: &'static str,
        _len: usize,
    ) -> Result<Items<'t>, Failed> {
        Ok(Items {
            types: self.types,
            items: Vec::new(),
            done: Done::Variant(self.name, index, var),
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Entries<'t>, Failed> {
        Ok(Entries {
            types: self.types,
            key: Shape::Unknown,
            value: Shape::Unknown,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Named<'t>, Failed> {
        Ok(Named {
            types: self.types,
            fields: Vec::new(),
            done: Done::Struct(self.name),
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        var: &'static str,
        _len: usize,
    ) -> Result<Named<'t>, Failed> {
        Ok(Named {
            types: self.types,
            fields: Vec::new(),
            done: Done::Variant(self.name, index, var),
        })
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// What a compound value is, to record when it ends.
enum Done {
    Tuple,
    Struct(&'static str),
    Variant(&'static str, u32, &'static str),
}

impl Done {
    fn finish(self, types: &mut Types, fields: Fields) -> Result<Shape, Failed> {
        match self {
            Done::Tuple => match fields {
                Fields::Tuple(items) => Ok(Shape::Tuple(items)),
                _ => Err(Failed("a tuple with named fields".into())),
            },
            Done::Struct(name) => {
                define(types, name, Container::Struct(fields))?;
                Ok(Shape::Named(name.to_owned()))
            }
            Done::Variant(name, index, var) => {
                define(types, name, variant(index, var, fields))?;
                Ok(Shape::Named(name.to_owned()))
            }
        }
    }
}

struct Elements<'t> {
    types: &'t mut Types,
    elem: Shape,
}

impl ser::SerializeSeq for Elements<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let seen = shape_of(value, self.types)?;
        self.elem = merge(std::mem::replace(&mut self.elem, Shape::Unknown), seen)?;
        Ok(())
    }
    fn end(self) -> Result<Shape, Failed> {
        Ok(Shape::Seq(Box::new(self.elem)))
    }
}

struct Items<'t> {
    types: &'t mut Types,
    items: Vec<Shape>,
    done: Done,
}

impl Items<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let shape = shape_of(value, self.types)?;
        self.items.push(shape);
        Ok(())
    }
    fn finish(self) -> Result<Shape, Failed> {
        self.done.finish(self.types, Fields::Tuple(self.items))
    }
}

impl ser::SerializeTuple for Items<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        self.push(value)
    }
    fn end(self) -> Result<Shape, Failed> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Items<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        self.push(value)
    }
    fn end(self) -> Result<Shape, Failed> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Items<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        self.push(value)
    }
    fn end(self) -> Result<Shape, Failed> {
        self.finish()
    }
}

struct Entries<'t> {
    types: &'t mut Types,
    key: Shape,
    value: Shape,
}

impl ser::SerializeMap for Entries<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Failed> {
        let seen = shape_of(key, self.types)?;
        self.key = merge(std::mem::replace(&mut self.key, Shape::Unknown), seen)?;
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let seen = shape_of(value, self.types)?;
        self.value = merge(std::mem::replace(&mut self.value, Shape::Unknown), seen)?;
        Ok(())
    }
    fn end(self) -> Result<Shape, Failed> {
        Ok(Shape::Map(Box::new(self.key), Box::new(self.value)))
    }
}

struct Named<'t> {
    types: &'t mut Types,
    fields: Vec<Field>,
    done: Done,
}

impl Named<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Failed> {
        let shape = shape_of(value, self.types)?;
        self.fields.push(Field::new(key, shape));
        Ok(())
    }
}

impl ser::SerializeStruct for Named<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        self.push(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Failed> {
        Err(Failed(format!(
            "field `{key}` is skipped when serializing (`skip_serializing_if`), which a positional format cannot store"
        )))
    }
    fn end(self) -> Result<Shape, Failed> {
        self.done.finish(self.types, Fields::Struct(self.fields))
    }
}

impl ser::SerializeStructVariant for Named<'_> {
    type Ok = Shape;
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        self.push(key, value)
    }
    fn end(self) -> Result<Shape, Failed> {
        self.done.finish(self.types, Fields::Struct(self.fields))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::layout::{diff, trace::trace, value};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Speed {
        Slow,
        Fast { hours: u8 },
    }

    #[derive(Serialize)]
    struct Sent<'a> {
        id: &'a str,
        qty: u32,
        cents: u32,
        speeds: Vec<Speed>,
        note: Option<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Awaited {
        id: String,
        cents: u64,
        qty: u32,
        speeds: Vec<Speed>,
        note: Option<String>,
    }

    #[test]
    fn a_sent_value_is_read_by_name_as_the_awaited_type() {
        let sent = Sent {
            id: "o",
            qty: 3,
            cents: 1999,
            speeds: vec![Speed::Fast { hours: 2 }],
            note: None,
        };
        let layout = of_value(&sent).unwrap();
        let bytes = crate::codec::encode(&sent).unwrap();
        let (shape, types) = trace::<Awaited>().unwrap();
        let edits = diff::shapes(&layout.shape, &layout.types, &shape, &types);
        assert!(diff::compatible(&edits), "{edits:?}");
        let value = value::read(&bytes, &layout.shape, &layout.types).unwrap();
        let got: Awaited = value::rebuild(&value).unwrap();
        assert_eq!(got.cents, 1999);
        assert_eq!(got.qty, 3);
        assert_eq!(got.speeds, [Speed::Fast { hours: 2 }]);
    }

    #[test]
    fn a_plain_str_has_the_layout_of_a_string() {
        assert_eq!(of_value("ana").unwrap().shape, Shape::Str);
        assert_eq!(of_value(&"ana").unwrap().shape, Shape::Str);
    }
}
