//! Shape fingerprints: a stable 64-bit FNV-1a hash of the state enum's
//! shape, computed from the analysed IR (names and type tokens), so that a
//! stored state is never resumed by code whose enum has another shape.

use super::Variant;

/// FNV-1a over length-prefixed parts, so ("ab","c") ≠ ("a","bc").
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn part(&mut self, s: &str) -> &mut Self {
        for b in (s.len() as u64).to_le_bytes().into_iter().chain(s.bytes()) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// A variant's own fingerprint: its name, the command it awaits, and each
/// field's name and declared type (`_` where rustc infers it).
pub(crate) fn variant(workflow: &str, v: &Variant) -> u64 {
    let mut h = Fnv::new();
    h.part(workflow).part(&v.ident.to_string()).part(&v.command);
    for f in &v.fields {
        h.part(&f.name.to_string()).part(&f.type_tokens);
    }
    h.finish()
}

/// The whole enum's fingerprint: the workflow, its input and output types,
/// and every variant's fingerprint in order.
pub(crate) fn whole(workflow: &str, input: &str, output: &str, variants: &[u64]) -> u64 {
    let mut h = Fnv::new();
    h.part(workflow).part(input).part(output);
    for v in variants {
        h.part(&format!("{v:016x}"));
    }
    h.finish()
}

/// A helper's await structure: each await's variant name and command, in
/// order (types and live locals are the layout's). Stored states of a
/// helper whose awaits moved are not read into another await point.
pub(crate) fn structure(helper: &str, variants: &[Variant]) -> u64 {
    let mut h = Fnv::new();
    h.part(helper);
    for v in variants {
        h.part(&v.ident.to_string()).part(&v.command);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_delimited_and_hash_is_stable() {
        let a = Fnv::new().part("ab").part("c").finish();
        let b = Fnv::new().part("a").part("bc").finish();
        assert_ne!(a, b);
        // pinned: a change here changes every stored fingerprint
        assert_eq!(
            Fnv::new().part("process_order").finish(),
            0xe53f_4c59_f72b_fb26
        );
    }
}
