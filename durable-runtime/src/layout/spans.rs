//! Where each field of a stored state begins and ends, read off the state's
//! layout without decoding it: a checkpoint keeps a large field that did
//! not change as a reference instead of writing it again (see
//! `engine/fields.rs`).
//!
//! The walk follows postcard's wire format: integers wider than a byte are
//! varints (zigzag for the signed ones), `u8`/`i8`/`bool` one byte, floats
//! 4 or 8 bytes, strings, bytes and `char`s a varint length and their
//! bytes, an `Option` a tag byte, sequences and maps a varint count, enums
//! a varint variant index, structs and tuples their fields in order. A
//! state the walk cannot follow to its last byte gives `None`, and is then
//! stored whole: the spans only choose where to cut, and whatever the cuts,
//! the pieces put back together are the same bytes.

use std::ops::Range;

use super::{Container, Fields, Shape, WorkflowLayout};

type Types = std::collections::BTreeMap<String, Container>;

/// How deep the walk follows nested values before it gives up.
const MAX_DEPTH: usize = 128;

/// The byte range of each field of `state` (an envelope as
/// [`crate::codec::encode`] writes it, of the state enum laid out as
/// `layout`) when it is in variant `variant` and reads by the layout to its
/// last byte; `None` otherwise.
pub(crate) fn fields(
    state: &[u8],
    layout: &WorkflowLayout,
    variant: &str,
) -> Option<Vec<Range<usize>>> {
    if state.first() != Some(&crate::codec::FORMAT_V1) {
        return None;
    }
    let Shape::Named(name) = &layout.state else {
        return None;
    };
    let Some(Container::Enum(variants)) = layout.types.get(name) else {
        return None;
    };
    let walk = Walk {
        bytes: state,
        types: &layout.types,
    };
    let (index, mut at) = walk.varint(1, 5)?;
    let (name, fields) = variants.get(usize::try_from(index).ok()?)?;
    if name != variant {
        return None;
    }
    let shapes: Vec<&Shape> = match fields {
        Fields::Unit => Vec::new(),
        Fields::Newtype(shape) => vec![shape],
        Fields::Tuple(shapes) => shapes.iter().collect(),
        Fields::Struct(fields) => fields.iter().map(|f| &f.shape).collect(),
    };
    let mut spans = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let end = walk.skip(at, shape, 0)?;
        spans.push(at..end);
        at = end;
    }
    (at == state.len()).then_some(spans)
}

struct Walk<'a> {
    bytes: &'a [u8],
    types: &'a Types,
}

impl Walk<'_> {
    /// The value of the varint at `at` (at most `max` bytes) and where it ends.
    fn varint(&self, at: usize, max: usize) -> Option<(u128, usize)> {
        let mut value: u128 = 0;
        for i in 0..max {
            let byte = *self.bytes.get(at + i)?;
            value |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value, at + i + 1));
            }
        }
        None
    }

    /// Where `n` bytes from `at` end, if they are there.
    fn take(&self, at: usize, n: u128) -> Option<usize> {
        let end = at.checked_add(usize::try_from(n).ok()?)?;
        (end <= self.bytes.len()).then_some(end)
    }

    /// Where the value of `shape` that begins at `at` ends.
    fn skip(&self, at: usize, shape: &Shape, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let inner = depth + 1;
        match shape {
            Shape::Unit => Some(at),
            Shape::Bool | Shape::U8 | Shape::I8 => self.take(at, 1),
            Shape::U16 | Shape::I16 => self.varint(at, 3).map(|(_, end)| end),
            Shape::U32 | Shape::I32 => self.varint(at, 5).map(|(_, end)| end),
            Shape::U64 | Shape::I64 => self.varint(at, 10).map(|(_, end)| end),
            Shape::U128 | Shape::I128 => self.varint(at, 19).map(|(_, end)| end),
            Shape::F32 => self.take(at, 4),
            Shape::F64 => self.take(at, 8),
            Shape::Char | Shape::Str | Shape::Bytes => {
                let (len, at) = self.varint(at, 10)?;
                self.take(at, len)
            }
            Shape::Option(some) => match self.bytes.get(at)? {
                0 => Some(at + 1),
                1 => self.skip(at + 1, some, inner),
                _ => None,
            },
            Shape::Seq(item) => {
                let (count, mut at) = self.varint(at, 10)?;
                for _ in 0..count {
                    at = self.skip(at, item, inner)?;
                }
                Some(at)
            }
            Shape::Map(key, value) => {
                let (count, mut at) = self.varint(at, 10)?;
                for _ in 0..count {
                    at = self.skip(at, key, inner)?;
                    at = self.skip(at, value, inner)?;
                }
                Some(at)
            }
            Shape::Tuple(items) => items
                .iter()
                .try_fold(at, |at, item| self.skip(at, item, inner)),
            Shape::Array(item, len) => (0..*len).try_fold(at, |at, _| self.skip(at, item, inner)),
            Shape::Named(name) => match self.types.get(name)? {
                Container::Struct(fields) => self.skip_fields(at, fields, inner),
                Container::Enum(variants) => {
                    let (index, at) = self.varint(at, 5)?;
                    let (_, fields) = variants.get(usize::try_from(index).ok()?)?;
                    self.skip_fields(at, fields, inner)
                }
            },
            Shape::Unknown => None,
        }
    }

    fn skip_fields(&self, at: usize, fields: &Fields, depth: usize) -> Option<usize> {
        match fields {
            Fields::Unit => Some(at),
            Fields::Newtype(shape) => self.skip(at, shape, depth),
            Fields::Tuple(shapes) => shapes.iter().try_fold(at, |at, s| self.skip(at, s, depth)),
            Fields::Struct(fields) => fields
                .iter()
                .try_fold(at, |at, f| self.skip(at, &f.shape, depth)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Line {
        sku: String,
        qty: u16,
        price: Option<i64>,
    }

    #[derive(Serialize, Deserialize)]
    enum Kind {
        Plain,
        Gift(String),
        Rush { by: u64, note: char },
    }

    #[derive(Serialize, Deserialize)]
    enum State {
        Start {
            n: u32,
        },
        Waiting {
            lines: Vec<Line>,
            kind: Kind,
            tags: std::collections::BTreeMap<String, (u8, bool, f64)>,
            big: u128,
            id: [u8; 4],
            f: f32,
        },
    }

    fn layout() -> WorkflowLayout {
        let (state, types) = super::super::trace::trace::<State>().unwrap();
        WorkflowLayout {
            workflow: "w".into(),
            version: 1,
            state,
            input: Shape::Unit,
            output: Shape::Unit,
            results: Vec::new(),
            types,
        }
    }

    #[test]
    fn each_field_of_a_state_is_found_where_postcard_wrote_it() {
        let layout = layout();
        for kind in [
            Kind::Plain,
            Kind::Gift("a card".into()),
            Kind::Rush {
                by: 1 << 40,
                note: 'é',
            },
        ] {
            let lines = vec![
                Line {
                    sku: "x".repeat(300),
                    qty: 40_000,
                    price: Some(-5),
                },
                Line {
                    sku: String::new(),
                    qty: 1,
                    price: None,
                },
            ];
            let tags = [("t".to_owned(), (7, true, 1.5))].into_iter().collect();
            let pieces = [
                crate::codec::encode(&lines).unwrap(),
                crate::codec::encode(&kind).unwrap(),
                crate::codec::encode(&tags).unwrap(),
                crate::codec::encode(&u128::MAX).unwrap(),
                crate::codec::encode(&[1u8, 2, 3, 4]).unwrap(),
                crate::codec::encode(&2.5f32).unwrap(),
            ];
            let state = State::Waiting {
                lines,
                kind,
                tags,
                big: u128::MAX,
                id: [1, 2, 3, 4],
                f: 2.5,
            };
            let bytes = crate::codec::encode(&state).unwrap();
            let spans = fields(&bytes, &layout, "Waiting").expect("walks to the end");
            assert_eq!(spans.len(), pieces.len());
            for (span, piece) in spans.iter().zip(&pieces) {
                // each piece is the field's own encoding (after its format byte)
                assert_eq!(&bytes[span.clone()], &piece[1..]);
            }
            assert_eq!(fields(&bytes, &layout, "Start"), None, "another variant");
            assert_eq!(fields(&bytes[..bytes.len() - 1], &layout, "Waiting"), None);
        }
    }
}
