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

use serde::de::{self, Visitor};

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
    /// What is known of each struct's (and struct variant's) fields so far.
    learning: BTreeMap<Learner, Learning>,
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

/// Whose fields are being learned: a struct, or a struct variant of an
/// enum (by index).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Learner {
    Struct(&'static str),
    Variant(&'static str, usize),
}

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
        // a struct variant being learned leaves its enum incomplete
        let structs = self.learning.iter().filter_map(|(k, l)| match k {
            Learner::Struct(n) if !l.defined => Some(*n),
            _ => None,
        });
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
                let learning = self.learning.iter().find_map(|(k, l)| match k {
                    Learner::Struct(n) if n == name => Some(l),
                    _ => None,
                });
                if incomplete && learning.is_some_and(|l| !l.defined) {
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

mod probe;

use probe::Probe;
