//! How traced types are named in a layout: by their Rust type names
//! without module paths, unless two would collide.

use std::collections::BTreeMap;

use super::{Container, Field, Fields, Shape};

type Types = BTreeMap<String, Container>;

/// A Rust type name without module paths: `Result<String, WorkflowError>`
/// for `core::result::Result<alloc::string::String, durable_runtime::WorkflowError>`.
pub(crate) fn short(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut path_start = 0;
    let mut chars = type_name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(path_start);
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            path_start = out.len();
        }
    }
    out
}

/// Names each type by its [`short`] name where that is unambiguous (the
/// full type name otherwise): containers are keyed by their Rust type, so
/// two instances of one generic type (`Result<u32, E>`, `Result<(), E>`)
/// stay apart.
pub(crate) fn rename(root: Shape, types: Types) -> (Shape, Types) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for full in types.keys() {
        *count.entry(short(full)).or_default() += 1;
    }
    let name = |full: &str| {
        let s = short(full);
        if count[&s] == 1 { s } else { full.to_owned() }
    };
    let renamed = types
        .iter()
        .map(|(full, c)| (name(full), rename_container(c, &name)))
        .collect();
    (rename_shape(&root, &name), renamed)
}

fn rename_shape(shape: &Shape, name: &dyn Fn(&str) -> String) -> Shape {
    let boxed = |s: &Shape| Box::new(rename_shape(s, name));
    match shape {
        Shape::Named(n) => Shape::Named(name(n)),
        Shape::Option(s) => Shape::Option(boxed(s)),
        Shape::Seq(s) => Shape::Seq(boxed(s)),
        Shape::Map(k, v) => Shape::Map(boxed(k), boxed(v)),
        Shape::Tuple(items) => Shape::Tuple(items.iter().map(|s| rename_shape(s, name)).collect()),
        Shape::Array(s, n) => Shape::Array(boxed(s), *n),
        other => other.clone(),
    }
}

fn rename_fields(fields: &Fields, name: &dyn Fn(&str) -> String) -> Fields {
    match fields {
        Fields::Unit => Fields::Unit,
        Fields::Newtype(s) => Fields::Newtype(rename_shape(s, name)),
        Fields::Tuple(items) => {
            Fields::Tuple(items.iter().map(|s| rename_shape(s, name)).collect())
        }
        Fields::Struct(fields) => Fields::Struct(
            fields
                .iter()
                .map(|f| Field {
                    shape: rename_shape(&f.shape, name),
                    ..f.clone()
                })
                .collect(),
        ),
    }
}

fn rename_container(c: &Container, name: &dyn Fn(&str) -> String) -> Container {
    match c {
        Container::Struct(f) => Container::Struct(rename_fields(f, name)),
        Container::Enum(variants) => Container::Enum(
            variants
                .iter()
                .map(|(n, f)| (n.clone(), rename_fields(f, name)))
                .collect(),
        ),
    }
}
