//! Whether a stored value fits a layout, decided from the layout alone
//! (for `durable check` with a manifest, which has the new code's layouts
//! but not its code).

use std::collections::BTreeMap;

use super::value::{Value, kind};
use super::{Container, Fields, Shape};

type Types = BTreeMap<String, Container>;

/// Whether `value` would rebuild by name as a value laid out as `shape`
/// (fields matched by name or alias, a missing field allowed only where the
/// layout says a default fills it, variants by name, integers in range):
/// what [`rebuild`](super::value::rebuild) into the code's types decides, for a check that has the
/// code's layout but not its code (a manifest).
///
/// # Errors
/// The first place the value does not fit, in the user's terms.
pub fn fits(value: &Value, shape: &Shape, types: &Types) -> Result<(), String> {
    Fit { types }.shape(value, shape, "")
}

struct Fit<'a> {
    types: &'a Types,
}

impl Fit<'_> {
    fn shape(&self, value: &Value, shape: &Shape, path: &str) -> Result<(), String> {
        let at = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                format!("`{p}`: ")
            }
        };
        let wrong = || {
            Err(format!(
                "{}the stored value is {}, the code's type is {}",
                at(path),
                kind(value),
                super::diff::show(shape)
            ))
        };
        let each = |items: &[Value], s: &Shape| {
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| self.shape(v, s, &join(path, &i.to_string())))
        };
        match (shape, value) {
            (Shape::Unknown, _)
            | (Shape::Option(_), Value::None)
            | (Shape::Unit, Value::Unit)
            | (Shape::Bool, Value::Bool(_))
            | (Shape::Char, Value::Char(_))
            | (Shape::Str, Value::Str(_))
            | (Shape::Bytes, Value::Bytes(_))
            | (Shape::F32 | Shape::F64, Value::F32(_) | Value::F64(_)) => Ok(()),
            (Shape::Option(inner), Value::Some(v)) => self.shape(v, inner, path),
            // a value that became optional
            (Shape::Option(inner), v) => self.shape(v, inner, path),
            (Shape::Seq(s), Value::Seq(items)) => each(items, s),
            (Shape::Tuple(shapes), Value::Tuple(items)) if shapes.len() == items.len() => items
                .iter()
                .zip(shapes)
                .enumerate()
                .try_for_each(|(i, (v, s))| self.shape(v, s, &join(path, &i.to_string()))),
            (Shape::Array(s, n), Value::Tuple(items)) if items.len() as u64 == *n => each(items, s),
            (Shape::Map(k, v), Value::Map(pairs)) => pairs.iter().try_for_each(|(pk, pv)| {
                self.shape(pk, k, path)?;
                self.shape(pv, v, path)
            }),
            (Shape::Named(name), _) => match self.types.get(name) {
                None => Err(format!("{}the layout does not describe `{name}`", at(path))),
                Some(Container::Struct(fields)) => self.fields(value, fields, path, name),
                Some(Container::Enum(variants)) => {
                    let Value::Variant(variant, body) = value else {
                        return wrong();
                    };
                    match variants.iter().find(|(n, _)| n == variant) {
                        Some((_, fields)) => self.fields(body, fields, &join(path, variant), name),
                        None => Err(format!(
                            "{}the stored value is variant `{variant}` of `{name}`, which the code no longer has",
                            at(path)
                        )),
                    }
                }
            },
            _ => match (int_of(value), int_range(shape)) {
                (Some(n), Some((min, max))) if n >= min && n <= max => Ok(()),
                (Some(n), Some(_)) => Err(format!(
                    "{}the stored value {n} does not fit {}",
                    at(path),
                    super::diff::show(shape)
                )),
                _ => wrong(),
            },
        }
    }

    fn fields(&self, value: &Value, fields: &Fields, path: &str, ty: &str) -> Result<(), String> {
        match (fields, value) {
            (Fields::Unit, Value::Unit) => Ok(()),
            (Fields::Newtype(s), Value::Newtype(v)) => self.shape(v, s, path),
            (Fields::Newtype(s), v) => self.shape(v, s, path),
            (Fields::Tuple(shapes), Value::Tuple(items)) if shapes.len() == items.len() => items
                .iter()
                .zip(shapes)
                .enumerate()
                .try_for_each(|(i, (v, s))| self.shape(v, s, &join(path, &i.to_string()))),
            (Fields::Struct(fields), Value::Struct(stored)) => fields.iter().try_for_each(|f| {
                match stored.iter().find(|(n, _)| f.answers_to(n)) {
                    Some((_, v)) => self.shape(v, &f.shape, &join(path, &f.name)),
                    None if f.optional => Ok(()),
                    None => Err(format!(
                        "`{}`: the stored value of `{ty}` has no field `{}` and the code gives it no default",
                        join(path, &f.name),
                        f.name
                    )),
                }
            }),
            _ => Err(format!(
                "`{path}`: the stored value is {}, `{ty}` is laid out otherwise",
                kind(value)
            )),
        }
    }
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_owned()
    } else {
        format!("{path}.{seg}")
    }
}

fn int_of(value: &Value) -> Option<i128> {
    match value {
        Value::U64(n) => Some(i128::from(*n)),
        Value::I64(n) => Some(i128::from(*n)),
        Value::I128(n) => Some(*n),
        Value::U128(n) => i128::try_from(*n).ok().or(Some(i128::MAX)),
        _ => None,
    }
}

fn int_range(shape: &Shape) -> Option<(i128, i128)> {
    Some(match shape {
        Shape::U8 => (0, u8::MAX.into()),
        Shape::U16 => (0, u16::MAX.into()),
        Shape::U32 => (0, u32::MAX.into()),
        Shape::U64 => (0, u64::MAX.into()),
        Shape::U128 => (0, i128::MAX),
        Shape::I8 => (i8::MIN.into(), i8::MAX.into()),
        Shape::I16 => (i16::MIN.into(), i16::MAX.into()),
        Shape::I32 => (i32::MIN.into(), i32::MAX.into()),
        Shape::I64 => (i64::MIN.into(), i64::MAX.into()),
        Shape::I128 => (i128::MIN, i128::MAX),
        _ => return None,
    })
}
