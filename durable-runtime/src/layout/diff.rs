//! What separates two layouts of one value, edit by edit, and whether a
//! stored value can cross each edit by name.
//!
//! The rules are protobuf's, with names instead of field numbers: fields
//! match by name (order is free), a field may be added (it then needs a
//! `#[serde(default)]`, an `Option` or an alias, which the rebuild checks
//! value by value) or removed, an enum may gain variants anywhere (variants
//! match by name), an integer may widen, a value may become an `Option`.
//! Everything else (a narrower or re-signed integer, a string that became
//! bytes, a tuple of another arity, a struct that became a tuple...) breaks:
//! the instance is parked with the edit named, never read by position.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::{Container, Field, Fields, Shape, WorkflowLayout};

/// One difference between a stored layout and the code's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Where, from the state variant down (`order.cents`).
    pub path: String,
    /// What changed, in the user's terms.
    pub change: String,
    /// Whether a stored value can cross it (`false`: the instance parks).
    pub compatible: bool,
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.change)
        } else {
            write!(f, "`{}`: {}", self.path, self.change)
        }
    }
}

/// The edits between variant `variant` of the stored state enum and the
/// same variant in the code's. A variant the code no longer has is one
/// breaking edit.
pub fn state_variant(old: &WorkflowLayout, new: &WorkflowLayout, variant: &str) -> Vec<Edit> {
    let mut d = Diff::new(&old.types, &new.types);
    match (old.state_variant(variant), new.state_variant(variant)) {
        (Some(a), Some(b)) => d.fields(a, b, "", variant),
        (Some(_), None) => d.push(
            "",
            format!("the state variant `{variant}` is gone from the code"),
            false,
        ),
        (None, _) => d.push(
            "",
            format!("the stored layout has no state variant `{variant}`"),
            false,
        ),
    }
    d.edits
}

/// The edits between two layouts of one value (a signal payload, a result).
pub fn shapes(
    old: &Shape,
    old_types: &BTreeMap<String, Container>,
    new: &Shape,
    new_types: &BTreeMap<String, Container>,
) -> Vec<Edit> {
    let mut d = Diff::new(old_types, new_types);
    d.shape(old, new, "");
    d.edits
}

/// How the awaits of two versions of a workflow differ, in the user's
/// terms: which await points (state variants, named after the awaited
/// command) were added, removed or hold other locals.
pub fn awaits(old: &WorkflowLayout, new: &WorkflowLayout) -> Vec<String> {
    let variants = |l: &WorkflowLayout| -> Vec<(String, Fields)> {
        match &l.state {
            Shape::Named(n) => match l.types.get(n) {
                Some(Container::Enum(v)) => v.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    };
    let (a, b) = (variants(old), variants(new));
    let locals = |f: &Fields| match f {
        Fields::Struct(fields) if !fields.is_empty() => fields
            .iter()
            .map(|f| format!("{}: {}", f.name, show(&f.shape)))
            .collect::<Vec<_>>()
            .join(", "),
        Fields::Unit | Fields::Struct(_) => "nothing".into(),
        other => show_fields(other).into(),
    };
    let mut out = Vec::new();
    for (i, (name, fields)) in b.iter().enumerate() {
        match a.iter().find(|(n, _)| n == name) {
            None => {
                let after = i
                    .checked_sub(1)
                    .and_then(|p| b.get(p))
                    .map_or(String::new(), |(p, _)| format!(" after `{p}`"));
                out.push(format!("await `{name}` added{after}"));
            }
            Some((_, old_fields)) if old_fields != fields && name != "Start" => out.push(format!(
                "await `{name}` now keeps {} (was {})",
                locals(fields),
                locals(old_fields)
            )),
            Some(_) => {}
        }
    }
    for (name, _) in &a {
        if !b.iter().any(|(n, _)| n == name) {
            out.push(format!("await `{name}` removed"));
        }
    }
    if old.input != new.input {
        out.push(format!(
            "the input is now {} (was {})",
            show(&new.input),
            show(&old.input)
        ));
    }
    out
}

/// Whether every edit is compatible.
pub fn compatible(edits: &[Edit]) -> bool {
    edits.iter().all(|e| e.compatible)
}

struct Diff<'a> {
    old: &'a BTreeMap<String, Container>,
    new: &'a BTreeMap<String, Container>,
    /// Pairs of named types already compared (recursive types end here).
    seen: HashSet<(String, String)>,
    edits: Vec<Edit>,
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_owned()
    } else {
        format!("{path}.{seg}")
    }
}

fn int(shape: &Shape) -> Option<(bool, u32)> {
    Some(match shape {
        Shape::U8 => (false, 8),
        Shape::U16 => (false, 16),
        Shape::U32 => (false, 32),
        Shape::U64 => (false, 64),
        Shape::U128 => (false, 128),
        Shape::I8 => (true, 8),
        Shape::I16 => (true, 16),
        Shape::I32 => (true, 32),
        Shape::I64 => (true, 64),
        Shape::I128 => (true, 128),
        _ => return None,
    })
}

/// A shape in Rust terms.
pub(crate) fn show(shape: &Shape) -> String {
    match shape {
        Shape::Unit => "()".into(),
        Shape::Bool => "bool".into(),
        Shape::I8 => "i8".into(),
        Shape::I16 => "i16".into(),
        Shape::I32 => "i32".into(),
        Shape::I64 => "i64".into(),
        Shape::I128 => "i128".into(),
        Shape::U8 => "u8".into(),
        Shape::U16 => "u16".into(),
        Shape::U32 => "u32".into(),
        Shape::U64 => "u64".into(),
        Shape::U128 => "u128".into(),
        Shape::F32 => "f32".into(),
        Shape::F64 => "f64".into(),
        Shape::Char => "char".into(),
        Shape::Str => "String".into(),
        Shape::Bytes => "bytes".into(),
        Shape::Option(s) => format!("Option<{}>", show(s)),
        Shape::Seq(s) => format!("a sequence of {}", show(s)),
        Shape::Map(k, v) => format!("a map {} → {}", show(k), show(v)),
        Shape::Tuple(items) => format!(
            "({})",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Shape::Array(s, n) => format!("[{}; {n}]", show(s)),
        Shape::Named(n) => n.clone(),
        Shape::Unknown => "?".into(),
    }
}

fn show_fields(f: &Fields) -> &'static str {
    match f {
        Fields::Unit => "no fields",
        Fields::Newtype(_) => "one unnamed field",
        Fields::Tuple(_) => "unnamed fields",
        Fields::Struct(_) => "named fields",
    }
}

impl<'a> Diff<'a> {
    fn new(old: &'a BTreeMap<String, Container>, new: &'a BTreeMap<String, Container>) -> Self {
        Diff {
            old,
            new,
            seen: HashSet::new(),
            edits: Vec::new(),
        }
    }

    fn push(&mut self, path: &str, change: String, compatible: bool) {
        self.edits.push(Edit {
            path: path.to_owned(),
            change,
            compatible,
        });
    }

    fn shape(&mut self, old: &Shape, new: &Shape, path: &str) {
        if let (Some((os, ob)), Some((ns, nb))) = (int(old), int(new)) {
            if old == new {
                return;
            }
            let widened = (os == ns && nb > ob) || (!os && ns && nb > ob);
            let how = if widened {
                "widened"
            } else if os != ns {
                "changed sign"
            } else {
                "narrowed"
            };
            self.push(
                path,
                format!("{} → {} ({how})", show(old), show(new)),
                widened,
            );
            return;
        }
        match (old, new) {
            // nothing of it was stored (an empty sequence, a `None`)
            (Shape::Unknown, _) => {}
            (Shape::Named(a), Shape::Named(b)) => self.named(a, b, path),
            (Shape::Option(a), Shape::Option(b)) | (Shape::Seq(a), Shape::Seq(b)) => {
                self.shape(a, b, path)
            }
            (Shape::Map(ak, av), Shape::Map(bk, bv)) => {
                self.shape(ak, bk, &join(path, "<key>"));
                self.shape(av, bv, &join(path, "<value>"));
            }
            (Shape::Tuple(a), Shape::Tuple(b)) => self.positional(a, b, path, "tuple"),
            (Shape::Array(a, n), Shape::Array(b, m)) if n == m => self.shape(a, b, path),
            (Shape::F32, Shape::F64) => self.push(path, "f32 → f64 (widened)".into(), true),
            (a, Shape::Option(b)) if !matches!(a, Shape::Option(_)) => {
                self.push(
                    path,
                    format!("{} → Option<{}> (now optional)", show(a), show(b)),
                    true,
                );
                self.shape(a, b, path);
            }
            (a, b) if a == b => {}
            (a, b) => self.push(path, format!("{} → {}", show(a), show(b)), false),
        }
    }

    fn positional(&mut self, a: &[Shape], b: &[Shape], path: &str, what: &str) {
        if a.len() != b.len() {
            self.push(
                path,
                format!("{what} of {} values → {} values", a.len(), b.len()),
                false,
            );
            return;
        }
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            self.shape(x, y, &join(path, &i.to_string()));
        }
    }

    fn named(&mut self, a: &str, b: &str, path: &str) {
        if !self.seen.insert((a.to_owned(), b.to_owned())) {
            return;
        }
        let (old, new) = (self.old, self.new);
        let (Some(oc), Some(nc)) = (old.get(a), new.get(b)) else {
            self.push(
                path,
                format!("type `{a}` or `{b}` is not described by its layout"),
                false,
            );
            return;
        };
        match (oc, nc) {
            (Container::Struct(x), Container::Struct(y)) => self.fields(x, y, path, b),
            (Container::Enum(x), Container::Enum(y)) => self.variants(x, y, path, b),
            (Container::Struct(_), Container::Enum(_)) => {
                self.push(path, format!("`{a}` was a struct, `{b}` is an enum"), false)
            }
            (Container::Enum(_), Container::Struct(_)) => {
                self.push(path, format!("`{a}` was an enum, `{b}` is a struct"), false)
            }
        }
    }

    fn fields(&mut self, old: &Fields, new: &Fields, path: &str, ty: &str) {
        match (old, new) {
            (Fields::Unit, Fields::Unit) => {}
            (Fields::Newtype(a), Fields::Newtype(b)) => self.shape(a, b, path),
            (Fields::Tuple(a), Fields::Tuple(b)) => self.positional(a, b, path, "tuple"),
            (Fields::Struct(a), Fields::Struct(b)) => self.named_fields(a, b, path, ty),
            (a, b) => self.push(
                path,
                format!("`{ty}` had {}, now has {}", show_fields(a), show_fields(b)),
                false,
            ),
        }
    }

    /// Named fields: matched by name or by a new field's alias; a field
    /// removed drops its value; a field added needs a value when a stored
    /// one lacks it (a default, an `Option`).
    fn named_fields(&mut self, old: &[Field], new: &[Field], path: &str, ty: &str) {
        // a state variant's `__await` is in a layout only when it holds a
        // #[helper]'s state: one side without it awaits a command there
        // instead, and neither reads the other's stored await
        let helper = |fields: &[Field]| fields.iter().any(|f| f.name == "__await");
        if helper(old) != helper(new) {
            let (was, is) = if helper(old) {
                ("a #[helper]", "a command")
            } else {
                ("a command", "a #[helper]")
            };
            self.push(
                &join(path, "__await"),
                format!("the await of `{ty}` was {was} and is now {is}"),
                false,
            );
        }
        let mut pairs = Vec::new();
        for f in old {
            let exact = new.iter().position(|n| n.name == f.name);
            let Some(j) = exact.or_else(|| new.iter().position(|n| n.answers_to(&f.name))) else {
                self.push(
                    &join(path, &f.name),
                    format!(
                        "field `{}` of `{ty}` removed (its stored value is dropped)",
                        f.name
                    ),
                    true,
                );
                continue;
            };
            let to = &new[j];
            if exact.is_none() {
                self.push(
                    &join(path, &to.name),
                    format!(
                        "field `{}` of `{ty}` renamed to `{}` (its alias)",
                        f.name, to.name
                    ),
                    true,
                );
            }
            self.shape(&f.shape, &to.shape, &join(path, &to.name));
            pairs.push(j);
        }
        for (j, f) in new.iter().enumerate() {
            if pairs.contains(&j) {
                continue;
            }
            let what = format!("field `{}: {}` of `{ty}` added", f.name, show(&f.shape));
            let removed: Vec<&str> = old
                .iter()
                .filter(|o| !new.iter().any(|n| n.answers_to(&o.name)))
                .map(|o| o.name.as_str())
                .collect();
            let renamed = match removed.as_slice() {
                [] => String::new(),
                [one] => {
                    format!("; if it is `{one}` renamed, give it `#[serde(alias = \"{one}\")]`")
                }
                many => format!(
                    "; if it is one of `{}` renamed, give it that name as a `#[serde(alias)]`",
                    many.join("`, `")
                ),
            };
            if f.optional {
                self.push(
                    &join(path, &f.name),
                    format!("{what} (stored values take its default)"),
                    true,
                );
            } else {
                self.push(
                    &join(path, &f.name),
                    format!(
                        "{what} without a default: stored values have none (give it `#[serde(default)]`, make it an `Option`, or an alias of the field it replaces){renamed}"
                    ),
                    false,
                );
            }
        }
        if !pairs.is_sorted() {
            self.push(
                path,
                format!("fields of `{ty}` reordered (matched by name)"),
                true,
            );
        }
    }

    fn variants(
        &mut self,
        old: &[(String, Fields)],
        new: &[(String, Fields)],
        path: &str,
        ty: &str,
    ) {
        for (name, fields) in old.iter().filter(|(n, _)| !n.is_empty()) {
            match new.iter().find(|(n, _)| n == name) {
                Some((_, nf)) => self.fields(fields, nf, &join(path, name), ty),
                None => self.push(
                    &join(path, name),
                    format!(
                        "variant `{name}` of `{ty}` removed (a stored value in it cannot be read)"
                    ),
                    true,
                ),
            }
        }
        // a value's layout knows only its own variants: none is "added"
        let partial = old.iter().any(|(n, _)| n.is_empty());
        for (name, _) in new.iter().filter(|_| !partial) {
            if !old.iter().any(|(n, _)| n == name) {
                self.push(
                    &join(path, name),
                    format!("variant `{name}` of `{ty}` added"),
                    true,
                );
            }
        }
        let renumbered = old
            .iter()
            .enumerate()
            .any(|(i, (n, _))| new.iter().position(|(m, _)| m == n).is_some_and(|j| j != i));
        if renumbered {
            self.push(
                path,
                format!("variants of `{ty}` renumbered (matched by name)"),
                true,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(fields: Vec<Field>) -> BTreeMap<String, Container> {
        let mut types = BTreeMap::new();
        types.insert(
            "Order".to_owned(),
            Container::Struct(Fields::Struct(fields)),
        );
        types
    }

    fn fields(fields: Vec<(&str, Shape)>) -> Vec<Field> {
        fields.into_iter().map(|(n, s)| Field::new(n, s)).collect()
    }

    fn edits(a: Vec<(&str, Shape)>, b: Vec<(&str, Shape)>) -> Vec<Edit> {
        edits_of(fields(a), fields(b))
    }

    fn edits_of(a: Vec<Field>, b: Vec<Field>) -> Vec<Edit> {
        let order = Shape::Named("Order".into());
        shapes(&order, &layout(a), &order, &layout(b))
    }

    #[test]
    fn a_field_added_needs_a_default_and_an_alias_carries_a_rename() {
        let mut note = Field::new("note", Shape::Str);
        let e = edits_of(
            fields(vec![("id", Shape::Str)]),
            vec![Field::new("id", Shape::Str), note.clone()],
        );
        assert!(!compatible(&e), "{e:?}");
        assert!(e[0].change.contains("without a default"), "{e:?}");
        note.optional = true;
        let e = edits_of(
            fields(vec![("id", Shape::Str)]),
            vec![Field::new("id", Shape::Str), note],
        );
        assert!(compatible(&e), "{e:?}");
        let mut cents = Field::new("cents", Shape::U64);
        cents.aliases = vec!["amount".into()];
        let e = edits_of(fields(vec![("amount", Shape::U32)]), vec![cents]);
        assert!(compatible(&e), "{e:?}");
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("`amount` of `Order` renamed to `cents`")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("u64")),
            "the shapes are compared too: {text:?}"
        );
    }

    #[test]
    fn widening_is_compatible_and_narrowing_or_resigning_is_not() {
        let e = edits(vec![("n", Shape::U32)], vec![("n", Shape::U64)]);
        assert!(compatible(&e) && e.len() == 1, "{e:?}");
        for (a, b) in [
            (Shape::U64, Shape::U32),
            (Shape::I32, Shape::U32),
            (Shape::U64, Shape::I64),
        ] {
            let e = edits(vec![("n", a)], vec![("n", b)]);
            assert!(!compatible(&e), "{e:?}");
        }
        assert!(compatible(&edits(
            vec![("n", Shape::U32)],
            vec![("n", Shape::I64)]
        )));
    }

    #[test]
    fn reorders_additions_and_removals_are_compatible_and_named() {
        let mut new = fields(vec![
            ("id", Shape::Str),
            ("cents", Shape::U32),
            ("note", Shape::Str),
        ]);
        new[2].optional = true;
        let e = edits_of(
            fields(vec![
                ("id", Shape::Str),
                ("qty", Shape::U32),
                ("cents", Shape::U32),
            ]),
            new,
        );
        assert!(compatible(&e), "{e:?}");
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains("`qty` of `Order` removed")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("`note: String` of `Order` added")),
            "{text:?}"
        );
        let e = edits(
            vec![("qty", Shape::U32), ("cents", Shape::U32)],
            vec![("cents", Shape::U32), ("qty", Shape::U32)],
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].change.contains("reordered"));
    }

    #[test]
    fn a_kind_change_breaks() {
        let e = edits(
            vec![("s", Shape::Str)],
            vec![("s", Shape::Seq(Box::new(Shape::U8)))],
        );
        assert!(!compatible(&e), "{e:?}");
        let e = edits(
            vec![("t", Shape::Tuple(vec![Shape::U8, Shape::U8]))],
            vec![("t", Shape::Tuple(vec![Shape::U8, Shape::U8, Shape::U8]))],
        );
        assert!(!compatible(&e) && e[0].path == "t", "{e:?}");
        let e = edits(
            vec![("o", Shape::Option(Box::new(Shape::U8)))],
            vec![("o", Shape::U8)],
        );
        assert!(!compatible(&e), "{e:?}");
        let e = edits(
            vec![("o", Shape::U8)],
            vec![("o", Shape::Option(Box::new(Shape::U8)))],
        );
        assert!(compatible(&e), "{e:?}");
    }
}
