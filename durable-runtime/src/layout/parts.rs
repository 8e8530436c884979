//! The results a state awaits, recorded before a deploy and read after it:
//! the parts of a `join_all` finished under another layout, and whether a
//! variant awaits a #[helper] (whose results are recorded under its name).

use super::{Shape, WorkflowLayout, diff, value};

/// The type of each part of the `join_all` a state of `layout` awaits at
/// `variant` (the element of its result, a sequence), if it awaits one.
pub(crate) fn part_shape<'l>(layout: &'l WorkflowLayout, variant: &str) -> Option<&'l Shape> {
    match layout.results.iter().find(|(v, _)| v == variant) {
        Some((_, Shape::Seq(part))) => Some(part),
        _ => None,
    }
}

/// Whether the state awaits a helper at `variant` (the results it waits
/// for are recorded as `variant/...`).
pub(crate) fn awaits_helper(layout: &WorkflowLayout, variant: &str) -> bool {
    layout
        .results
        .iter()
        .any(|(v, _)| v.strip_prefix(variant).is_some_and(|r| r.starts_with('/')))
}

/// Why results recorded at `variant` by another build cannot be read.
pub(crate) fn parts_changed(variant: &str, what: &dyn std::fmt::Display) -> String {
    format!(
        "results already recorded at `{variant}` (parts finished before the deploy) were written as another type: {what}"
    )
}

/// The results of a `join_all`'s parts recorded by the code of layout
/// `old` (awaiting at `variant`), for code laid out as `new`: per part, the
/// value read by name when its type was edited, `None` when it was not
/// recorded or its bytes read as they are — or, when an edit cannot be
/// crossed or the bytes do not read by their own layout, why not. Never
/// read by position.
pub(crate) fn parts_across(
    parts: &[Option<Vec<u8>>],
    old: &WorkflowLayout,
    new: &WorkflowLayout,
    variant: &str,
) -> Result<Vec<Option<value::Value>>, Vec<String>> {
    let unchanged = || parts.iter().map(|_| None).collect();
    // a variant with no result in a layout awaits a #[helper] (what it
    // awaits depends on where the helper stands): parts recorded inside it
    // cannot be checked against the edit, so they are not read at all
    let awaits_result = |l: &WorkflowLayout| l.results.iter().any(|(v, _)| v == variant);
    if parts.iter().any(Option::is_some) && !(awaits_result(old) && awaits_result(new)) {
        return Err(vec![parts_changed(
            variant,
            &"the layout changed, and they were recorded inside a #[helper] (its results are not read across a deploy)",
        )]);
    }
    let (Some(a), Some(b)) = (part_shape(old, variant), part_shape(new, variant)) else {
        return Ok(unchanged());
    };
    let reason = |what: &dyn std::fmt::Display| parts_changed(variant, what);
    let edits = diff::shapes(a, &old.types, b, &new.types);
    if edits.is_empty() {
        return Ok(unchanged());
    }
    if !diff::compatible(&edits) {
        return Err(edits
            .iter()
            .filter(|e| !e.compatible)
            .map(|e| reason(e))
            .collect());
    }
    parts
        .iter()
        .map(|p| match p {
            None => Ok(None),
            Some(bytes) => value::read(bytes, a, &old.types)
                .map(Some)
                .map_err(|e| vec![reason(&format!("one does not read by its own layout: {e}"))]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A layout whose variant `Join` awaits a `join_all` of `part` (when
    /// `part` is given) or a #[helper] (no result recorded for it).
    fn awaiting(part: Option<Shape>) -> WorkflowLayout {
        WorkflowLayout {
            workflow: "w".into(),
            version: 1,
            state: Shape::Unit,
            input: Shape::Unit,
            output: Shape::Unit,
            results: part
                .map(|p| vec![("Join".to_owned(), Shape::Seq(Box::new(p)))])
                .unwrap_or_default(),
            types: BTreeMap::new(),
        }
    }

    #[test]
    fn parts_recorded_inside_a_helper_are_never_read_across_a_changed_layout() {
        let parts = vec![Some(crate::codec::encode(&7u32).unwrap()), None];
        // awaited directly: an edit of the part's type that can be crossed
        let direct = parts_across(
            &parts,
            &awaiting(Some(Shape::U32)),
            &awaiting(Some(Shape::U64)),
            "Join",
        );
        assert!(direct.is_ok(), "{direct:?}");
        // inside a helper (no result in either layout): refused, not read
        let inside = parts_across(&parts, &awaiting(None), &awaiting(None), "Join").unwrap_err();
        assert!(inside[0].contains("#[helper]"), "{inside:?}");
        // nothing recorded yet: nothing to read, nothing refused
        assert!(parts_across(&[None, None], &awaiting(None), &awaiting(None), "Join").is_ok());
    }
}
